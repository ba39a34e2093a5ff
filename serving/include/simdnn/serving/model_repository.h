// The models a server serves, and how they change while it runs: a model repository laid out as
// TF Serving and Triton lay theirs out,
//
//   DIR/<name>/<version>/model.safetensors     (versions: positive integers)
//
// or one model file (serve --model FILE). Each model's live versions are chosen by a version
// policy (Triton's latest N / specific / all); an optional canary sends a share of the model's
// unpinned traffic to one more version. Everything a request needs is in an immutable
// ModelSet snapshot that is swapped atomically on each reload: a request takes the snapshot
// once, so it finishes on the versions that were live when it started, while a reload loads
// and validates new versions beside the old ones. Semantics and flags: docs/serving.md.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "simdnn/model.h"
#include "simdnn/serving/metrics.h"
#include "simdnn/serving/predictions.h"

namespace simdnn::serving {

// Which versions of a model are live (Triton's version_policy).
struct VersionPolicy {
  enum class Kind { kLatest, kSpecific, kAll };
  Kind kind = Kind::kLatest;
  size_t latest = 1;                // kLatest: the N highest versions that load
  std::vector<int64_t> versions;    // kSpecific: exactly these (those that load)
};

// "latest:N" (N >= 1), "specific:V[,V...]" (positive integers) or "all". Throws
// std::invalid_argument naming the problem.
VersionPolicy parse_version_policy(std::string_view text);

// --canary NAME:VERSION:PERCENT: PERCENT (0..100, decimals allowed) of NAME's unpinned requests
// go to VERSION, chosen by a hash of the request id (the same id always lands on the same side).
struct CanarySpec {
  std::string model;
  int64_t version = 0;
  double percent = 0;
};
// Throws std::invalid_argument naming the problem.
CanarySpec parse_canary(std::string_view text);

// What identifies one state of a model file: device, inode, size and the modification and
// change times in nanoseconds. The inode matters because writers replace files by rename (a new
// inode), and two writes within one coarse filesystem clock tick can leave size and mtime
// unchanged.
struct FileIdentity {
  uint64_t device = 0;
  uint64_t inode = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  friend bool operator==(const FileIdentity&, const FileIdentity&) = default;
};

// One loaded, validated model version: immutable once published, shared by every request that
// uses it (each predicts into buffers of its own). Whoever holds a shared_ptr to it keeps it
// alive after it was unloaded or replaced, so a request in flight finishes on it.
struct ModelVersion {
  std::string name;
  // The version as responses name it: the directory name ("3") in a repository; for --model
  // FILE, the file's metadata "version" or "1" when it has none.
  std::string version;
  int64_t number = 1;  // ordering within the model (the directory number; 1 for --model FILE)
  Model model;
  std::filesystem::path file;  // "" for a model handed over in memory
  // The file as loaded: a reload skips versions whose file did not change.
  FileIdentity file_identity;
  PredictionWriter writer;           // this version's labels and version for /predict bodies
  std::string version_json;          // `version` JSON-quoted
  std::string name_json;             // `name` JSON-quoted (invalid UTF-8 replaced)
  const Metrics::ModelSeries* series = nullptr;  // its model_inference_* series

  ModelVersion(std::string name, std::string version, int64_t number, Model model);
};

// What a request resolved to: the version that will compute it, or the HTTP status and message
// for why there is none (404 unknown model or version, 503 unloaded model).
struct Resolution {
  std::shared_ptr<const ModelVersion> version;
  int status = 200;
  std::string error;
};

// The live set at one moment. Immutable.
class ModelSet {
 public:
  struct Entry {
    std::vector<std::shared_ptr<const ModelVersion>> versions;  // live, highest first
    std::shared_ptr<const ModelVersion> primary;  // unpinned traffic (highest non-canary)
    std::shared_ptr<const ModelVersion> canary;   // may be null
    double canary_percent = 0;
  };

  // The version for a request to `name`: `version` when pinned (the exact version string),
  // else the primary, or the canary for a canary_percent share of request ids.
  Resolution resolve(std::string_view name, std::optional<std::string_view> version,
                     std::string_view request_id) const;
  const Entry* find(std::string_view name) const;
  // Live models by name, and the repository's models that were unloaded (503, not 404).
  const std::map<std::string, Entry, std::less<>>& models() const { return models_; }
  bool unloaded(std::string_view name) const { return unloaded_.count(std::string(name)) > 0; }

 private:
  friend class ModelRepository;
  std::map<std::string, Entry, std::less<>> models_;
  std::set<std::string> unloaded_;
};

// Where the models come from and which versions go live.
struct RepositoryOptions {
  std::filesystem::path repository;  // DIR, or "" with `model_file`
  std::filesystem::path model_file;  // --model FILE: a one-model repository
  std::string model_file_name;       // its name ("" -> the file's stem)
  std::map<std::string, VersionPolicy> policies;  // by model name; default latest:1
  std::optional<CanarySpec> canary;
  // Seconds between repository scans on a background thread; 0: only on request (SIGHUP,
  // the load endpoint, reload()).
  int poll_seconds = 5;
};

// One row of POST /v2/repository/index.
struct RepositoryIndexEntry {
  std::string name;
  std::string version;
  std::string state;   // "READY", "UNAVAILABLE" (failed validation, or not chosen by policy)
  std::string reason;  // why it is not READY
};

// The outcome of a load request for one model.
struct LoadOutcome {
  int status = 200;     // 200 done, 404 no such model, 400 a version failed validation
  std::string message;  // why not 200
};

class ModelRepository {
 public:
  // Loads and validates the configured models (load failures are logged and counted; a
  // repository with no model that loads is an error), then polls if options.poll_seconds > 0.
  // Throws std::invalid_argument for bad options, IoError (naming the file) when the one
  // --model FILE does not load or no model in the repository does.
  ModelRepository(RepositoryOptions options, Metrics& metrics);
  // A single model handed over in memory (embedding, tests): never reloads.
  ModelRepository(Model model, std::string name, Metrics& metrics);
  ~ModelRepository();  // stops the poller
  ModelRepository(const ModelRepository&) = delete;
  ModelRepository& operator=(const ModelRepository&) = delete;

  // The live set now; lock-free for the caller, never blocked by a reload.
  std::shared_ptr<const ModelSet> live() const { return live_.load(std::memory_order_acquire); }

  // Rescans every model now (loading in the caller's thread). Serialized with other reloads.
  // Throws IoError when the repository directory cannot be read (the live set stays).
  void reload();
  // Wakes the poller to reload now and returns at once (SIGHUP).
  void request_reload();
  // POST /v2/repository/models/{name}/load: marks the model loaded again and reloads it,
  // retrying files that failed before even if unchanged. status 404 when the model is not in
  // the repository, 400 (with the validation error) when a version failed.
  LoadOutcome load(const std::string& name);
  // POST /v2/repository/models/{name}/unload: takes every version out of the live set.
  LoadOutcome unload(const std::string& name);
  // Every model and version found in the repository, with its state.
  std::vector<RepositoryIndexEntry> index();
  // Repository reloads that finished (tests wait on it).
  uint64_t reload_count() const { return reloads_.load(); }

 private:
  struct Candidate;
  std::vector<Candidate> scan(const std::string* only);
  // Returns the failures of this reload ("model version: reason").
  std::map<std::string, std::vector<std::string>> reload_locked(const std::string* only);
  std::shared_ptr<const ModelVersion> load_version(const Candidate& c, std::string* error);
  void publish(std::shared_ptr<ModelSet> set);
  void poll_loop();

  RepositoryOptions options_;
  Metrics& metrics_;
  std::atomic<std::shared_ptr<const ModelSet>> live_;
  bool fixed_ = false;  // the in-memory model: nothing to reload

  std::mutex reload_mutex_;  // one reload at a time; guards the state below
  std::set<std::string> unloaded_;
  // Files that failed validation, as they were, so that a poll does not retry (and re-log) them
  // until they change.
  std::map<std::filesystem::path, FileIdentity> failed_;
  std::map<std::filesystem::path, std::string> failure_reason_;
  // Whether a load since the last reset failed for a reason other than the file's contents
  // (DataError): when no model loads at start, the constructor throws DataError only if every
  // failure was bad data, so that serve exits 2 (bad data) rather than 4 (I/O).
  bool load_failed_other_than_data_ = false;
  std::set<std::filesystem::path> ignored_logged_;  // ignored entries, logged once
  std::atomic<uint64_t> reloads_{0};

  std::mutex poll_mutex_;
  std::condition_variable poll_cv_;
  bool stop_ = false;
  bool reload_requested_ = false;
  std::thread poller_;
};

}  // namespace simdnn::serving
