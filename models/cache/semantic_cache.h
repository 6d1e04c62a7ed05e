// SemanticCache: answers kept by the meaning of the request that produced
// them (GPTCache-style) rather than by its exact bytes. A request is an
// embedding vector (embedder.h); a lookup finds the nearest stored vectors
// of the same namespace and returns the best one's answer when its score
// reaches the threshold.
//
// Namespaces isolate what must never be mixed: each has its own faiss index
// (an IndexIDMap2 over an IndexFlatIP of L2-normalized vectors, so the
// inner product is the cosine). Exact search is deliberate: a cache holds
// hundreds to thousands of entries per namespace, where a flat scan is
// cheap next to the model call it saves and, unlike approximate indexes,
// needs no training and never misses a neighbour that is there.
//
// The score. With vectors alone it is their cosine. Traffic is mostly
// templates with a variable part ("What time does Walmart open on
// Sunday?", "... Costco ..."), and there the words that tell two requests
// apart are few among many shared ones: their cosine is high although the
// answers differ. So a request may also bring its terms (hashed words,
// Embedder::Terms); the best `candidates` by cosine are then rescored by
// a blend with the IDF-weighted cosine of the terms, the IDF taken from the
// namespace's own entries. A term every entry has (the template's words)
// counts for little; one only a few have (the entity) for much. The
// statistics are read at lookup time, so they never go stale the way
// weights baked into stored vectors would.
//
// Bounds: at most max_entries entries across all namespaces, the least
// recently used (looked up or inserted) evicted first; entries older than
// ttl_s are dropped at the next Lookup or Insert. Thread-safe: lookups
// search under a shared lock, in parallel; inserts are exclusive.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "lumen/serve.h"

namespace faiss {
struct Index;
template <typename IndexT>
struct IndexIDMap2Template;
}  // namespace faiss

namespace lumen::models {

struct SemanticCacheOptions {
  // The vectors' length; 0: taken from the first vector seen.
  int dim = 0;
  // The least score that counts as the same request, in (-1, 1].
  float threshold = 0.92f;
  // Entries kept across all namespaces (the least recently used go first);
  // 0: no bound.
  size_t max_entries = 10000;
  // Seconds an entry answers after it was stored; 0: until evicted.
  double ttl_s = 0;
  // The share of the score that comes from the terms' IDF-weighted cosine
  // when both sides have terms, in [0, 1]; the rest is the vectors' cosine.
  float term_weight = 0.5f;
  // How many nearest vectors are rescored with their terms.
  int candidates = 8;
  // Time source for ttl_s (default: the real clock); tests move a FakeClock.
  const Clock* clock = nullptr;
};

struct CacheHit {
  serve::Response response;
  float similarity = 0;  // the score: cosine, blended with the terms' when there are terms
};

struct CacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t inserts = 0;    // new entries
  uint64_t replaced = 0;   // inserts that refreshed an entry already within the threshold
  uint64_t evictions = 0;  // dropped for max_entries
  uint64_t expired = 0;    // dropped for ttl_s
  size_t entries = 0;
  size_t namespaces = 0;
};

class SemanticCache {
 public:
  static constexpr float kMergeScore = 0.98f;

  // INVALID_ARGUMENT for options out of range, saying which.
  static absl::StatusOr<std::unique_ptr<SemanticCache>> Create(SemanticCacheOptions options);
  ~SemanticCache();
  SemanticCache(const SemanticCache&) = delete;
  SemanticCache& operator=(const SemanticCache&) = delete;

  // The answer stored for the best-scoring entry of `ns` when its score
  // reaches the threshold; nullopt otherwise. `vector` need not be
  // normalized; `terms` (any order, repeats ignored) may be empty.
  // INVALID_ARGUMENT for a vector of the wrong length or of zero norm (it
  // has no direction to compare); INTERNAL if faiss fails.
  absl::StatusOr<std::optional<CacheHit>> Lookup(std::string_view ns, std::span<const float> vector,
                                                 std::span<const uint64_t> terms = {});

  // Stores `value` as the answer for `vector` (and `terms`) in `ns`. When
  // an entry of `ns` is (nearly) the same request, scoring at least
  // kMergeScore (two misses for the same question raced), that entry gets
  // the new answer instead of gaining a twin. Merely similar requests are
  // kept apart: merging at the threshold would fold the first few requests
  // of a template into one entry before the term statistics can tell them
  // apart. Same errors as Lookup.
  absl::Status Insert(std::string_view ns, std::span<const float> vector, serve::Response value,
                      std::span<const uint64_t> terms = {});

  // Drops every entry (counters are kept).
  void Clear();
  CacheStats Stats() const;
  const SemanticCacheOptions& options() const { return options_; }

 private:
  using IdMap = faiss::IndexIDMap2Template<faiss::Index>;
  struct Entry {
    std::string ns;
    serve::Response value;
    std::vector<uint64_t> terms;  // sorted, unique
    int64_t expires_ms = 0;       // 0: never
    std::list<int64_t>::iterator lru;
  };
  struct Space;  // one namespace: its index and term statistics
  struct Scored {
    int64_t id = -1;
    float score = 0;
  };

  explicit SemanticCache(SemanticCacheOptions options);
  // The unit vector for `vector`, or why it cannot be one.
  absl::StatusOr<std::vector<float>> Normalize(std::span<const float> vector)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The best entry of `space` for unit vector `v` and sorted unique
  // `terms`: id -1 when the space is empty.
  Scored Best(const Space& space, const float* v, const std::vector<uint64_t>& terms) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  void PurgeExpired() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes entries (all of one namespace or not) from the indexes and
  // the books; drops namespaces left empty.
  void Remove(const std::vector<int64_t>& ids) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Marks `entry` the most recently used.
  void Touch(Entry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const SemanticCacheOptions options_;
  const Clock* const clock_;
  mutable absl::Mutex mu_;
  int dim_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, std::unique_ptr<Space>, std::less<>> spaces_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<int64_t, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::list<int64_t> lru_ ABSL_GUARDED_BY(mu_);                        // most recent first
  std::set<std::pair<int64_t, int64_t>> expiry_ ABSL_GUARDED_BY(mu_);  // (expires_ms, id)
  CacheStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lumen::models
