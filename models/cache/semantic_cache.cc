// The semantic cache; see semantic_cache.h.
#include "models/cache/semantic_cache.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexIDMap.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/utils/distances.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <exception>

#include "absl/strings/str_cat.h"

namespace lumen::models {

namespace {

// faiss parallelizes with OpenMP, which for one query at a time only adds
// a thread team per call (tens of microseconds, and spinning threads that
// compete with the replica's own); with many requests in flight at once it
// would start a team of every core per request. The cache's parallelism is
// its concurrent lookups, so faiss runs on the calling thread. The setting
// is the calling thread's own; restored on exit.
class SingleThreadedFaiss {
 public:
  SingleThreadedFaiss() : previous_(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~SingleThreadedFaiss() { omp_set_num_threads(previous_); }

 private:
  int previous_;
};

}  // namespace

// Debian builds faiss for the baseline x86-64 (no SSE3), where its
// one-query scan is the scalar reference loop: about 0.8 ns per float, 0.4
// ms for a thousand 512-d entries. Its BLAS path (sgemm, vectorized in any
// BLAS) is taken from the first query instead of the twentieth.
const bool kFaissUsesBlas = [] {
  faiss::distance_compute_blas_threshold = 1;
  return true;
}();

struct SemanticCache::Space {
  explicit Space(int dim) : index(new faiss::IndexFlatIP(dim)) { index.own_fields = true; }
  IdMap index;
  // For each term, how many entries have it; and how many entries have
  // terms at all (the IDF's N).
  std::unordered_map<uint64_t, uint32_t> df;
  size_t with_terms = 0;

  void Count(const std::vector<uint64_t>& terms, int delta) {
    if (terms.empty()) return;
    if (delta > 0) {
      with_terms++;
      for (uint64_t t : terms) df[t]++;
      return;
    }
    with_terms--;
    for (uint64_t t : terms) {
      auto it = df.find(t);
      if (it != df.end() && --it->second == 0) df.erase(it);
    }
  }
  double Idf(uint64_t term) const {
    auto it = df.find(term);
    // A term no entry has weighs as one that a single entry has: as rare
    // as a stored entity, not rarer (else a new filler word would outweigh
    // everything the two requests share).
    double n = it == df.end() ? 1 : it->second;
    return std::log((1.0 + with_terms) / (1.0 + n)) + 1.0;
  }
};

namespace {

std::vector<uint64_t> SortedUnique(std::span<const uint64_t> terms) {
  std::vector<uint64_t> out(terms.begin(), terms.end());
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SemanticCache>> SemanticCache::Create(SemanticCacheOptions options) {
  if (options.dim < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("semantic cache: dim is ", options.dim,
                     "; give the embedder's vector "
                     "length, or 0 to take it from the first vector"));
  }
  if (!(options.threshold > -1.0f && options.threshold <= 1.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("semantic cache: threshold is ", options.threshold,
                     "; it is a cosine similarity: give a value in (-1, 1], such as 0.92"));
  }
  if (!(options.ttl_s >= 0) || std::isinf(options.ttl_s)) {
    return absl::InvalidArgumentError(absl::StrCat("semantic cache: ttl_s is ", options.ttl_s,
                                                   "; give seconds >= 0 (0: no expiry)"));
  }
  if (!(options.term_weight >= 0 && options.term_weight <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "semantic cache: term_weight is ", options.term_weight,
        "; it is the terms' share of the score: give a value in [0, 1] (0: vectors only)"));
  }
  if (options.candidates < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("semantic cache: candidates is ", options.candidates, "; give at least 1"));
  }
  return std::unique_ptr<SemanticCache>(new SemanticCache(options));
}

SemanticCache::SemanticCache(SemanticCacheOptions options)
    : options_(options),
      clock_(options.clock != nullptr ? options.clock : RealClock::Get()),
      dim_(options.dim) {}

SemanticCache::~SemanticCache() = default;

absl::StatusOr<std::vector<float>> SemanticCache::Normalize(std::span<const float> vector) {
  if (vector.empty()) {
    return absl::InvalidArgumentError(
        "semantic cache: the vector is empty; the embedder gave "
        "nothing for this request");
  }
  if (dim_ == 0) dim_ = static_cast<int>(vector.size());
  if (vector.size() != static_cast<size_t>(dim_)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "semantic cache: a vector of ", vector.size(), " floats where the cache holds ", dim_,
        "; one cache takes the vectors of one embedder"));
  }
  double norm = 0;
  for (float x : vector) norm += static_cast<double>(x) * x;
  norm = std::sqrt(norm);
  if (!(norm > 1e-12) || std::isinf(norm)) {
    return absl::InvalidArgumentError(
        "semantic cache: the vector has zero (or non-finite) norm, so no direction to compare; "
        "the request held nothing the embedder could use");
  }
  std::vector<float> out(vector.begin(), vector.end());
  for (float& x : out) x = static_cast<float>(x / norm);
  return out;
}

SemanticCache::Scored SemanticCache::Best(const Space& space, const float* v,
                                          const std::vector<uint64_t>& terms) const {
  if (space.index.ntotal == 0) return {};
  bool rescore = options_.term_weight > 0 && !terms.empty() && space.with_terms > 0;
  int k =
      rescore ? static_cast<int>(std::min<int64_t>(options_.candidates, space.index.ntotal)) : 1;
  std::vector<float> cosine(k, 0.0f);
  std::vector<faiss::Index::idx_t> labels(k, -1);
  {
    SingleThreadedFaiss single;
    space.index.search(1, v, k, cosine.data(), labels.data());
  }
  if (!rescore) return {labels[0], cosine[0]};
  double query_norm = 0;
  for (uint64_t t : terms) query_norm += space.Idf(t) * space.Idf(t);
  Scored best;
  best.score = -2;
  for (int i = 0; i < k; ++i) {
    auto entry = entries_.find(labels[i]);
    if (labels[i] < 0 || entry == entries_.end()) continue;
    float score = cosine[i];
    const std::vector<uint64_t>& other = entry->second.terms;
    if (!other.empty()) {
      double dot = 0, other_norm = 0;
      auto q = terms.begin();
      for (uint64_t t : other) {
        double w = space.Idf(t);
        other_norm += w * w;
        while (q != terms.end() && *q < t) ++q;
        if (q != terms.end() && *q == t) dot += w * w;
      }
      double term_cosine = dot / std::sqrt(query_norm * other_norm);
      score = static_cast<float>((1 - options_.term_weight) * cosine[i] +
                                 options_.term_weight * term_cosine);
    }
    if (score > best.score) best = {labels[i], score};
  }
  return best;
}

void SemanticCache::Touch(Entry& entry) { lru_.splice(lru_.begin(), lru_, entry.lru); }

void SemanticCache::Remove(const std::vector<int64_t>& ids) {
  std::map<std::string, std::vector<faiss::Index::idx_t>> by_space;
  for (int64_t id : ids) {
    auto it = entries_.find(id);
    if (it == entries_.end()) continue;
    by_space[it->second.ns].push_back(id);
    if (auto space = spaces_.find(it->second.ns); space != spaces_.end()) {
      space->second->Count(it->second.terms, -1);
    }
    lru_.erase(it->second.lru);
    if (it->second.expires_ms != 0) expiry_.erase({it->second.expires_ms, id});
    entries_.erase(it);
  }
  for (auto& [ns, list] : by_space) {
    auto space = spaces_.find(ns);
    if (space == spaces_.end()) continue;
    // One pass over the flat index for the whole batch: its remove_ids
    // compacts the stored vectors.
    faiss::IDSelectorBatch selector(list.size(), list.data());
    SingleThreadedFaiss single;
    space->second->index.remove_ids(selector);
    if (space->second->index.ntotal == 0) spaces_.erase(space);
  }
}

void SemanticCache::PurgeExpired() {
  if (expiry_.empty()) return;
  int64_t now = clock_->NowMs();
  std::vector<int64_t> ids;
  for (auto it = expiry_.begin(); it != expiry_.end() && it->first <= now; ++it) {
    ids.push_back(it->second);
  }
  if (ids.empty()) return;
  Remove(ids);
  stats_.expired += ids.size();
}

absl::StatusOr<std::optional<CacheHit>> SemanticCache::Lookup(std::string_view ns,
                                                              std::span<const float> vector,
                                                              std::span<const uint64_t> terms) {
  std::vector<uint64_t> sorted = SortedUnique(terms);
  std::vector<float> v;
  {
    // Exclusive but short: dropping expired entries and fixing the length.
    absl::MutexLock lock(&mu_);
    auto unit = Normalize(vector);
    if (!unit.ok()) return unit.status();
    v = std::move(*unit);
    try {
      PurgeExpired();
    } catch (const std::exception& e) {
      return absl::InternalError(
          absl::StrCat("semantic cache: dropping expired entries: ", e.what()));
    }
  }
  std::optional<CacheHit> hit;
  int64_t id = -1;
  {
    // The scan, whose cost grows with the namespace, under a shared lock:
    // lookups run in parallel (faiss searches are const).
    absl::ReaderMutexLock lock(&mu_);
    try {
      auto space = spaces_.find(ns);
      if (space != spaces_.end()) {
        Scored best = Best(*space->second, v.data(), sorted);
        auto entry = entries_.find(best.id);
        if (best.id >= 0 && best.score >= options_.threshold && entry != entries_.end()) {
          hit = CacheHit{entry->second.value, std::min(best.score, 1.0f)};
          id = best.id;
        }
      }
    } catch (const std::exception& e) {
      // faiss::FaissException (and bad_alloc) must not escape into Call.
      return absl::InternalError(absl::StrCat("semantic cache: lookup failed: ", e.what()));
    }
  }
  absl::MutexLock lock(&mu_);
  if (hit.has_value()) {
    // Evicted meanwhile: the answer was still valid when found.
    if (auto entry = entries_.find(id); entry != entries_.end()) Touch(entry->second);
    stats_.hits++;
  } else {
    stats_.misses++;
  }
  return hit;
}

absl::Status SemanticCache::Insert(std::string_view ns, std::span<const float> vector,
                                   serve::Response value, std::span<const uint64_t> terms) {
  std::vector<uint64_t> sorted = SortedUnique(terms);
  absl::MutexLock lock(&mu_);
  auto v = Normalize(vector);
  if (!v.ok()) return v.status();
  try {
    PurgeExpired();
    int64_t now = clock_->NowMs();
    int64_t expires =
        options_.ttl_s > 0 ? now + std::max<int64_t>(1, std::llround(options_.ttl_s * 1000)) : 0;
    auto space = spaces_.find(ns);
    if (space == spaces_.end()) {
      space = spaces_.emplace(std::string(ns), std::make_unique<Space>(dim_)).first;
    }
    Scored best = Best(*space->second, v->data(), sorted);
    int64_t near = best.id;
    if (auto entry = entries_.find(near); near >= 0 &&
                                          best.score >= std::max(options_.threshold, kMergeScore) &&
                                          entry != entries_.end()) {
      entry->second.value = std::move(value);
      space->second->Count(entry->second.terms, -1);
      entry->second.terms = std::move(sorted);
      space->second->Count(entry->second.terms, +1);
      if (entry->second.expires_ms != 0) expiry_.erase({entry->second.expires_ms, near});
      entry->second.expires_ms = expires;
      if (expires != 0) expiry_.insert({expires, near});
      Touch(entry->second);
      stats_.replaced++;
      return absl::OkStatus();
    }
    int64_t id = next_id_++;
    faiss::Index::idx_t label = id;
    {
      SingleThreadedFaiss single;
      space->second->index.add_with_ids(1, v->data(), &label);
    }
    lru_.push_front(id);
    space->second->Count(sorted, +1);
    entries_.emplace(
        id, Entry{std::string(ns), std::move(value), std::move(sorted), expires, lru_.begin()});
    if (expires != 0) expiry_.insert({expires, id});
    stats_.inserts++;
    if (options_.max_entries > 0 && entries_.size() > options_.max_entries) {
      std::vector<int64_t> victims;
      auto it = lru_.rbegin();
      for (size_t n = entries_.size() - options_.max_entries; n > 0; --n) victims.push_back(*it++);
      Remove(victims);
      stats_.evictions += victims.size();
    }
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("semantic cache: insert failed: ", e.what()));
  }
}

void SemanticCache::Clear() {
  absl::MutexLock lock(&mu_);
  spaces_.clear();
  entries_.clear();
  lru_.clear();
  expiry_.clear();
}

CacheStats SemanticCache::Stats() const {
  absl::MutexLock lock(&mu_);
  CacheStats s = stats_;
  s.entries = entries_.size();
  s.namespaces = spaces_.size();
  return s;
}

}  // namespace lumen::models
