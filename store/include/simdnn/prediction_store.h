// The prediction store: every prediction the service makes (request id, time, model, version,
// class, confidence, top-k, and the input only when asked), and the ground truth users send
// back for it, in an embedded SQLite database (WAL mode).
//
// The request path only appends to a bounded in-memory queue (record() never blocks on the
// disk: when the queue is full the record is dropped and counted); one writer thread commits
// the queue in batches, one transaction per batch, and prunes old rows. A kill -9 loses at
// most the rows not yet committed (the last batch and the queue); the database itself stays
// consistent, because SQLite's WAL commit is atomic.
//
// Schema (table "predictions", PRAGMA user_version = 1):
//   id INTEGER PRIMARY KEY, request_id TEXT, time_ms INTEGER (Unix ms), model TEXT,
//   version TEXT, predicted_class INTEGER, confidence REAL, top_k TEXT (JSON
//   [{"class":3,"probability":0.91},...]), input BLOB (NULL unless stored),
//   feedback_label INTEGER (NULL until feedback), feedback_time_ms INTEGER.
// Every statement is prepared with bound parameters: no value is ever spliced into SQL.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace simdnn {

// Opening or creating the database failed; the message names the file and SQLite's reason.
class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One prediction, as the request path hands it over.
struct PredictionRecord {
  std::string request_id;
  int64_t time_ms = 0;  // Unix time in milliseconds
  std::string model;
  std::string version;
  int32_t predicted_class = 0;
  float confidence = 0.0f;  // the predicted class's probability
  std::vector<std::pair<int32_t, float>> top_k;  // (class, probability), best first
  std::vector<uint8_t> input;  // empty: not stored (the default; see --store-inputs)
};

struct PredictionStoreOptions {
  // Records waiting for the writer; record() drops (and counts) beyond this.
  size_t queue_capacity = 65536;
  // One transaction commits at most batch_rows records...
  size_t batch_rows = 1024;
  // ...and a record waits at most about batch_interval before its batch commits.
  std::chrono::milliseconds batch_interval{200};
  // Retention, applied by the writer at most once per second: rows older than max_age
  // (0: no age limit) and, beyond max_rows rows, the oldest ones (0: no row limit). Age is cut
  // in id order: the rows before the first one that is younger than max_age go.
  std::chrono::seconds max_age{0};
  size_t max_rows = 0;
};

// What record_feedback() found.
enum class FeedbackStatus {
  kRecorded,   // the label is stored with the prediction
  kUnknown,    // no stored prediction has that request id (never made, dropped or pruned)
  kDuplicate,  // that prediction already has feedback; the first label stays
};

struct FeedbackResult {
  FeedbackStatus status = FeedbackStatus::kUnknown;
  // The prediction the feedback is about (set for kRecorded and kDuplicate).
  std::string model;
  std::string version;
  int32_t predicted_class = -1;
};

// Counters since open; each is read without a lock.
struct PredictionStoreStats {
  uint64_t enqueued = 0;    // accepted by record()
  uint64_t dropped = 0;     // refused by record() because the queue was full
  uint64_t written = 0;     // committed to the database
  uint64_t failed = 0;      // lost to a failed transaction (disk full, I/O error)
  uint64_t pruned = 0;      // deleted by retention
  uint64_t batches = 0;     // transactions committed
  size_t queue_depth = 0;   // waiting for the writer now
};

class PredictionStore {
 public:
  // Opens (or creates) the database at `path` in WAL mode and starts the writer thread.
  // Throws StoreError naming the path when it cannot be opened, is not a SQLite database, or
  // holds a schema of another version; std::invalid_argument for a zero capacity or batch.
  PredictionStore(const std::filesystem::path& path, PredictionStoreOptions options = {});
  // Commits everything still queued, then stops the writer.
  ~PredictionStore();
  PredictionStore(const PredictionStore&) = delete;
  PredictionStore& operator=(const PredictionStore&) = delete;

  // Queues one record for the writer. Never waits for the disk and never throws for a full
  // queue: returns false (and counts a drop) instead.
  bool record(PredictionRecord record);

  // Stores `label` as the ground truth of the latest prediction of `model` ("" : any model)
  // with this request id. The writer commits every record queued before this call first, so
  // feedback for a prediction still in the queue is found. Blocks the caller until the writer
  // has answered (it wakes at once; one transaction). Throws StoreError when the database fails.
  FeedbackResult record_feedback(const std::string& model, const std::string& request_id,
                                 int32_t label);

  // Returns once every record queued before the call is committed (or failed).
  void flush();

  PredictionStoreStats stats() const;
  const std::filesystem::path& path() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A prediction that has feedback, as a retraining job reads it back.
struct LabelledPrediction {
  int64_t id = 0;  // the row id: rows are appended, so ids follow the order of predictions
  std::string request_id;
  int64_t time_ms = 0;
  std::string model;
  std::string version;
  int32_t predicted_class = 0;
  int32_t label = 0;           // the feedback label (not range-checked: the store never was)
  std::vector<uint8_t> input;  // the stored pixels; empty when the input was not stored
};

// Which labelled rows to read: "" matches any model / version.
struct LabelledPredictionFilter {
  std::string model;
  std::string version;
};

// Calls `visit` for every row of the database at `path` that has feedback and matches
// `filter`, in id order, with or without a stored input (the caller counts those without).
// Opens its own read-only connection with one prepared statement (no writer thread, nothing
// created or changed), so it reads a store that a running service is writing (WAL readers do
// not block the writer; a snapshot of the committed rows at the start is read). Returns the
// number of rows visited. Throws StoreError naming the path when the file is missing, is not a
// SQLite database or holds another schema version; an exception from `visit` propagates.
size_t for_each_labelled_prediction(const std::filesystem::path& path,
                                    const LabelledPredictionFilter& filter,
                                    const std::function<void(const LabelledPrediction&)>& visit);

// The top-k column's JSON text: [{"class":3,"probability":0.91},...], each probability the
// shortest decimal that reads back as the same float.
std::string top_k_json(const std::vector<std::pair<int32_t, float>>& top_k);
// The same text appended to `out`, so the writer reuses one buffer for every row.
void append_top_k_json(std::string& out, const std::vector<std::pair<int32_t, float>>& top_k);

}  // namespace simdnn
