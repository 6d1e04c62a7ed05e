// The semantic cache; see semantic_cache.h.
#include "models/cache/semantic_cache.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexIDMap.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>

#include <cmath>
#include <exception>

#include "absl/strings/str_cat.h"

namespace lumen::models {

struct SemanticCache::Space {
  explicit Space(int dim) : index(new faiss::IndexFlatIP(dim)) { index.own_fields = true; }
  IdMap index;
};

absl::StatusOr<std::unique_ptr<SemanticCache>> SemanticCache::Create(SemanticCacheOptions options) {
  if (options.dim < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("semantic cache: dim is ", options.dim, "; give the embedder's vector "
                     "length, or 0 to take it from the first vector"));
  }
  if (!(options.threshold > -1.0f && options.threshold <= 1.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("semantic cache: threshold is ", options.threshold,
                     "; it is a cosine similarity: give a value in (-1, 1], such as 0.92"));
  }
  if (!(options.ttl_s >= 0) || std::isinf(options.ttl_s)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "semantic cache: ttl_s is ", options.ttl_s, "; give seconds >= 0 (0: no expiry)"));
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
    return absl::InvalidArgumentError("semantic cache: the vector is empty; the embedder gave "
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

std::pair<int64_t, float> SemanticCache::Nearest(Space& space, const float* v) {
  if (space.index.ntotal == 0) return {-1, 0.0f};
  float similarity = 0;
  faiss::Index::idx_t label = -1;
  space.index.search(1, v, 1, &similarity, &label);
  return {label, similarity};
}

void SemanticCache::Touch(Entry& entry) { lru_.splice(lru_.begin(), lru_, entry.lru); }

void SemanticCache::Remove(const std::vector<int64_t>& ids) {
  std::map<std::string, std::vector<faiss::Index::idx_t>> by_space;
  for (int64_t id : ids) {
    auto it = entries_.find(id);
    if (it == entries_.end()) continue;
    by_space[it->second.ns].push_back(id);
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
                                                              std::span<const float> vector) {
  absl::MutexLock lock(&mu_);
  auto v = Normalize(vector);
  if (!v.ok()) return v.status();
  try {
    PurgeExpired();
    auto space = spaces_.find(ns);
    if (space == spaces_.end()) {
      stats_.misses++;
      return std::nullopt;
    }
    auto [id, similarity] = Nearest(*space->second, v->data());
    auto entry = entries_.find(id);
    if (id < 0 || similarity < options_.threshold || entry == entries_.end()) {
      stats_.misses++;
      return std::nullopt;
    }
    Touch(entry->second);
    stats_.hits++;
    return CacheHit{entry->second.value, std::min(similarity, 1.0f)};
  } catch (const std::exception& e) {
    // faiss::FaissException (and bad_alloc) must not escape into Call.
    return absl::InternalError(absl::StrCat("semantic cache: lookup failed: ", e.what()));
  }
}

absl::Status SemanticCache::Insert(std::string_view ns, std::span<const float> vector,
                                   serve::Response value) {
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
    auto [near, similarity] = Nearest(*space->second, v->data());
    if (auto entry = entries_.find(near);
        near >= 0 && similarity >= options_.threshold && entry != entries_.end()) {
      entry->second.value = std::move(value);
      if (entry->second.expires_ms != 0) expiry_.erase({entry->second.expires_ms, near});
      entry->second.expires_ms = expires;
      if (expires != 0) expiry_.insert({expires, near});
      Touch(entry->second);
      stats_.replaced++;
      return absl::OkStatus();
    }
    int64_t id = next_id_++;
    faiss::Index::idx_t label = id;
    space->second->index.add_with_ids(1, v->data(), &label);
    lru_.push_front(id);
    entries_.emplace(id, Entry{std::string(ns), std::move(value), expires, lru_.begin()});
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
