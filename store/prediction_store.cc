#include "simdnn/prediction_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <future>
#include <mutex>
#include <thread>
#include <variant>

namespace simdnn {

std::string top_k_json(const std::vector<std::pair<int32_t, float>>& top_k) {
  std::string out;
  append_top_k_json(out, top_k);
  return out;
}

void append_top_k_json(std::string& out, const std::vector<std::pair<int32_t, float>>& top_k) {
  out += '[';
  char buf[32];
  for (size_t i = 0; i < top_k.size(); ++i) {
    if (i) out += ',';
    out += "{\"class\":";
    out.append(buf, std::to_chars(buf, buf + sizeof buf, top_k[i].first).ptr);
    out += ",\"probability\":";
    // std::to_chars writes the shortest text that reads back as the same float (cheaper than
    // printf's %.9g, which the writer thread spent most of its own time in); a non-finite
    // probability (never produced by softmax) would not be JSON, so it is written as null.
    const float p = top_k[i].second;
    if (p == p && p - p == 0.0f) {
      out.append(buf, std::to_chars(buf, buf + sizeof buf, p).ptr);
    } else {
      out += "null";
    }
    out += '}';
  }
  out += ']';
}

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One prepared statement, reset after every use.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql, const std::string& path) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) {
      throw StoreError(path + ": cannot prepare a statement: " + sqlite3_errmsg(db));
    }
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  sqlite3_stmt* get() { return stmt_; }
  // Runs a statement that returns no rows; throws on failure.
  void run(const std::string& what) {
    const int rc = sqlite3_step(stmt_);
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    if (rc != SQLITE_DONE) throw StoreError(what + ": " + sqlite3_errmsg(db_));
  }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

constexpr int kSchemaVersion = 1;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS predictions(
  id INTEGER PRIMARY KEY,
  request_id TEXT NOT NULL,
  time_ms INTEGER NOT NULL,
  model TEXT NOT NULL,
  version TEXT NOT NULL,
  predicted_class INTEGER NOT NULL,
  confidence REAL NOT NULL,
  top_k TEXT NOT NULL,
  input BLOB,
  feedback_label INTEGER,
  feedback_time_ms INTEGER);
CREATE INDEX IF NOT EXISTS predictions_request_id ON predictions(request_id);
DROP INDEX IF EXISTS predictions_time_ms;
)sql";
// The time_ms index of the first databases is dropped at open: retention by age finds its cut
// through the id order instead (ids grow with time), and every insert no longer updates a second
// index. Dropping an index changes no row, so the schema version stays 1 and an older build
// still opens the file (it creates the index again).

struct Feedback {
  std::string model;
  std::string request_id;
  int32_t label;
  std::promise<FeedbackResult> done;
};
struct Flush {
  std::promise<void> done;
};
using Request = std::variant<Feedback, Flush>;

}  // namespace

struct PredictionStore::Impl {
  std::filesystem::path path;
  PredictionStoreOptions options;
  sqlite3* db = nullptr;

  std::mutex mutex;
  std::condition_variable wake;
  std::vector<PredictionRecord> queue;  // guarded by mutex
  std::deque<Request> requests;         // guarded by mutex
  bool stopping = false;                // guarded by mutex

  std::atomic<uint64_t> enqueued{0}, dropped{0}, written{0}, failed{0}, pruned{0}, batches{0};
  std::atomic<size_t> depth{0};

  std::thread writer;

  [[noreturn]] void fail(const std::string& what) {
    throw StoreError(path.string() + ": " + what + ": " + sqlite3_errmsg(db));
  }
  void exec(const char* sql, const char* what) {
    char* err = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = path.string() + ": " + what + ": " + (err ? err : "unknown error");
      sqlite3_free(err);
      throw StoreError(msg);
    }
  }

  void open() {
    if (sqlite3_open_v2(path.c_str(), &db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK) {
      std::string msg = path.string() + ": cannot open the prediction store: " +
                        (db ? sqlite3_errmsg(db) : "out of memory");
      sqlite3_close(db);
      db = nullptr;
      throw StoreError(msg);
    }
    try {
      // An outside reader (sqlite3 CLI, a retraining job) may hold a lock for a moment.
      sqlite3_busy_timeout(db, 5000);
      // WAL: readers never block the writer, and a commit is one append to the log. NORMAL
      // sync keeps every committed transaction across a process crash (kill -9); only a power
      // loss can take back the last commits.
      exec("PRAGMA journal_mode=WAL", "cannot switch to WAL mode (not a SQLite database?)");
      exec("PRAGMA synchronous=NORMAL", "cannot set synchronous=NORMAL");
      // 32 MB of page cache (default 2 MB): serve's own ids sort by time and land on the
      // request_id index's last pages, but ids sent by clients land anywhere in it, and a page
      // that is not cached is read back from the file for every such insert.
      exec("PRAGMA cache_size=-32768", "cannot set the cache size");
      int version = 0;
      {
        Statement s(db, "PRAGMA user_version", path.string());
        if (sqlite3_step(s.get()) == SQLITE_ROW) version = sqlite3_column_int(s.get(), 0);
      }
      if (version != 0 && version != kSchemaVersion) {
        throw StoreError(path.string() + ": prediction store schema version " +
                         std::to_string(version) + ", this build reads " +
                         std::to_string(kSchemaVersion));
      }
      exec(kSchema, "cannot create the predictions table");
      exec("PRAGMA user_version=1", "cannot set the schema version");
    } catch (...) {
      sqlite3_close(db);
      db = nullptr;
      throw;
    }
  }

  // Inserts `rows` in transactions of at most batch_rows rows each.
  void write(std::vector<PredictionRecord>& rows, Statement& insert, Statement& begin,
             Statement& commit, Statement& rollback) {
    std::string top_k;  // one buffer for every row's top-k text
    for (size_t first = 0; first < rows.size(); first += options.batch_rows) {
      const size_t last = std::min(rows.size(), first + options.batch_rows);
      try {
        begin.run("BEGIN");
        for (size_t i = first; i < last; ++i) {
          const PredictionRecord& r = rows[i];
          sqlite3_stmt* s = insert.get();
          top_k.clear();
          append_top_k_json(top_k, r.top_k);
          sqlite3_bind_text(s, 1, r.request_id.data(), static_cast<int>(r.request_id.size()),
                            SQLITE_STATIC);
          sqlite3_bind_int64(s, 2, r.time_ms);
          sqlite3_bind_text(s, 3, r.model.data(), static_cast<int>(r.model.size()), SQLITE_STATIC);
          sqlite3_bind_text(s, 4, r.version.data(), static_cast<int>(r.version.size()),
                            SQLITE_STATIC);
          sqlite3_bind_int(s, 5, r.predicted_class);
          sqlite3_bind_double(s, 6, r.confidence);
          sqlite3_bind_text(s, 7, top_k.data(), static_cast<int>(top_k.size()), SQLITE_STATIC);
          if (r.input.empty()) {
            sqlite3_bind_null(s, 8);
          } else {
            sqlite3_bind_blob(s, 8, r.input.data(), static_cast<int>(r.input.size()),
                              SQLITE_STATIC);
          }
          insert.run("INSERT");
        }
        commit.run("COMMIT");
        written += last - first;
        ++batches;
      } catch (const StoreError&) {
        // A failed batch (disk full, I/O error) is counted and the writer carries on: the
        // service keeps predicting whatever happens to its log.
        rollback.reset();
        sqlite3_step(rollback.get());
        rollback.reset();
        failed += last - first;
      }
    }
  }

  FeedbackResult feedback(const std::string& model, const std::string& request_id,
                          int32_t label, Statement& find, Statement& update) {
    FeedbackResult result;
    sqlite3_stmt* f = find.get();
    sqlite3_bind_text(f, 1, request_id.data(), static_cast<int>(request_id.size()),
                      SQLITE_STATIC);
    sqlite3_bind_text(f, 2, model.data(), static_cast<int>(model.size()), SQLITE_STATIC);
    const int rc = sqlite3_step(f);
    if (rc == SQLITE_DONE) {
      find.reset();
      return result;  // kUnknown
    }
    if (rc != SQLITE_ROW) {
      find.reset();
      fail("cannot look up request id");
    }
    const int64_t id = sqlite3_column_int64(f, 0);
    result.model = reinterpret_cast<const char*>(sqlite3_column_text(f, 1));
    result.version = reinterpret_cast<const char*>(sqlite3_column_text(f, 2));
    result.predicted_class = sqlite3_column_int(f, 3);
    const bool has_feedback = sqlite3_column_type(f, 4) != SQLITE_NULL;
    find.reset();
    if (has_feedback) {
      result.status = FeedbackStatus::kDuplicate;
      return result;
    }
    sqlite3_stmt* u = update.get();
    sqlite3_bind_int(u, 1, label);
    sqlite3_bind_int64(u, 2, now_ms());
    sqlite3_bind_int64(u, 3, id);
    update.run(path.string() + ": cannot store feedback");
    result.status = FeedbackStatus::kRecorded;
    return result;
  }

  void prune(Statement& by_age, Statement& by_rows) {
    if (options.max_age.count() > 0) {
      sqlite3_bind_int64(by_age.get(), 1,
                         now_ms() - static_cast<int64_t>(options.max_age.count()) * 1000);
      by_age.run(path.string() + ": retention by age");
      pruned += static_cast<uint64_t>(sqlite3_changes(db));
    }
    if (options.max_rows > 0) {
      sqlite3_bind_int64(by_rows.get(), 1, static_cast<int64_t>(options.max_rows));
      by_rows.run(path.string() + ": retention by rows");
      pruned += static_cast<uint64_t>(sqlite3_changes(db));
    }
  }

  void run() {
    const std::string p = path.string();
    Statement insert(db,
                     "INSERT INTO predictions(request_id,time_ms,model,version,predicted_class,"
                     "confidence,top_k,input) VALUES(?1,?2,?3,?4,?5,?6,?7,?8)",
                     p);
    Statement begin(db, "BEGIN", p), commit(db, "COMMIT", p), rollback(db, "ROLLBACK", p);
    Statement find(db,
                   "SELECT id,model,version,predicted_class,feedback_label FROM predictions "
                   "WHERE request_id=?1 AND (?2='' OR model=?2) ORDER BY id DESC LIMIT 1",
                   p);
    Statement update(db,
                     "UPDATE predictions SET feedback_label=?1,feedback_time_ms=?2 WHERE id=?3",
                     p);
    // Ids grow with time (rows are appended as predictions are made), so the rows older than the
    // cut are those below the first id at or after it: one bounded scan from the oldest row,
    // with no time_ms index to keep up at every insert. When no row is that recent, all go.
    Statement by_age(db,
                     "DELETE FROM predictions WHERE id<coalesce((SELECT id FROM predictions "
                     "WHERE time_ms>=?1 ORDER BY id LIMIT 1),(SELECT max(id)+1 FROM predictions))",
                     p);
    // Ids only grow (rows are only appended), so the newest max_rows rows are the ids above
    // max(id) - max_rows.
    Statement by_rows(db,
                      "DELETE FROM predictions WHERE id<=(SELECT max(id) FROM predictions)-?1",
                      p);
    auto last_prune = std::chrono::steady_clock::now() - std::chrono::hours(1);

    std::vector<PredictionRecord> rows;
    std::deque<Request> pending;
    for (;;) {
      bool stop = false;
      {
        std::unique_lock lock(mutex);
        wake.wait_for(lock, options.batch_interval, [&] {
          return stopping || !requests.empty() || queue.size() >= options.batch_rows;
        });
        rows.swap(queue);
        pending.swap(requests);
        depth = 0;
        stop = stopping;
      }
      write(rows, insert, begin, commit, rollback);
      rows.clear();
      for (Request& r : pending) {
        if (auto* fb = std::get_if<Feedback>(&r)) {
          try {
            fb->done.set_value(feedback(fb->model, fb->request_id, fb->label, find, update));
          } catch (...) {
            fb->done.set_exception(std::current_exception());
          }
        } else {
          std::get<Flush>(r).done.set_value();
        }
      }
      pending.clear();
      const auto now = std::chrono::steady_clock::now();
      if (now - last_prune >= std::chrono::seconds(1)) {
        last_prune = now;
        try {
          prune(by_age, by_rows);
        } catch (const StoreError&) {
          // Retained rows are retried at the next prune.
        }
      }
      if (stop) {
        std::lock_guard lock(mutex);
        if (queue.empty() && requests.empty()) break;
      }
    }
  }
};

PredictionStore::PredictionStore(const std::filesystem::path& path,
                                 PredictionStoreOptions options)
    : impl_(std::make_unique<Impl>()) {
  if (options.queue_capacity == 0 || options.batch_rows == 0) {
    throw std::invalid_argument("prediction store: queue_capacity and batch_rows must be >= 1");
  }
  if (options.batch_interval.count() <= 0) {
    throw std::invalid_argument("prediction store: batch_interval must be positive");
  }
  impl_->path = path;
  impl_->options = options;
  impl_->queue.reserve(std::min<size_t>(options.queue_capacity, 4096));
  impl_->open();
  impl_->writer = std::thread([impl = impl_.get()] { impl->run(); });
}

PredictionStore::~PredictionStore() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->wake.notify_one();
  impl_->writer.join();
  // The last connection to close checkpoints the WAL into the database file.
  sqlite3_close(impl_->db);
}

bool PredictionStore::record(PredictionRecord record) {
  bool notify = false;
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->queue.size() >= impl_->options.queue_capacity) {
      ++impl_->dropped;
      return false;
    }
    impl_->queue.push_back(std::move(record));
    impl_->depth = impl_->queue.size();
    notify = impl_->queue.size() == impl_->options.batch_rows;
  }
  ++impl_->enqueued;
  if (notify) impl_->wake.notify_one();
  return true;
}

FeedbackResult PredictionStore::record_feedback(const std::string& model,
                                                const std::string& request_id, int32_t label) {
  std::future<FeedbackResult> result;
  {
    std::lock_guard lock(impl_->mutex);
    Feedback fb{model, request_id, label, {}};
    result = fb.done.get_future();
    impl_->requests.emplace_back(std::move(fb));
  }
  impl_->wake.notify_one();
  return result.get();
}

void PredictionStore::flush() {
  std::future<void> done;
  {
    std::lock_guard lock(impl_->mutex);
    Flush f;
    done = f.done.get_future();
    impl_->requests.emplace_back(std::move(f));
  }
  impl_->wake.notify_one();
  done.get();
}

PredictionStoreStats PredictionStore::stats() const {
  PredictionStoreStats s;
  s.enqueued = impl_->enqueued;
  s.dropped = impl_->dropped;
  s.written = impl_->written;
  s.failed = impl_->failed;
  s.pruned = impl_->pruned;
  s.batches = impl_->batches;
  s.queue_depth = impl_->depth;
  return s;
}

const std::filesystem::path& PredictionStore::path() const { return impl_->path; }

size_t for_each_labelled_prediction(const std::filesystem::path& path,
                                    const LabelledPredictionFilter& filter,
                                    const std::function<void(const LabelledPrediction&)>& visit) {
  const std::string p = path.string();
  sqlite3* db = nullptr;
  // Read-only and never created: a mistyped path must not leave an empty database behind.
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr) !=
      SQLITE_OK) {
    std::string msg =
        p + ": cannot open the prediction store: " + (db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_close(db);
    throw StoreError(msg);
  }
  struct Closer {
    sqlite3* db;
    ~Closer() { sqlite3_close(db); }
  } closer{db};
  sqlite3_busy_timeout(db, 5000);
  {
    // user_version also makes SQLite read the header: "file is not a database" surfaces here.
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, nullptr) != SQLITE_OK) {
      sqlite3_finalize(s);
      throw StoreError(p + ": not a prediction store: " + sqlite3_errmsg(db));
    }
    const int rc = sqlite3_step(s);
    const int version = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW) throw StoreError(p + ": not a prediction store: " + sqlite3_errmsg(db));
    if (version != kSchemaVersion) {
      throw StoreError(p + ": prediction store schema version " + std::to_string(version) +
                       ", this build reads " + std::to_string(kSchemaVersion));
    }
  }
  Statement select(db,
                   "SELECT id,request_id,time_ms,model,version,predicted_class,feedback_label,"
                   "input FROM predictions WHERE feedback_label IS NOT NULL "
                   "AND (?1='' OR model=?1) AND (?2='' OR version=?2) ORDER BY id",
                   p);
  sqlite3_stmt* s = select.get();
  sqlite3_bind_text(s, 1, filter.model.data(), static_cast<int>(filter.model.size()),
                    SQLITE_STATIC);
  sqlite3_bind_text(s, 2, filter.version.data(), static_cast<int>(filter.version.size()),
                    SQLITE_STATIC);
  const auto text = [s](int column) {
    const unsigned char* t = sqlite3_column_text(s, column);
    return t ? std::string(reinterpret_cast<const char*>(t),
                           static_cast<size_t>(sqlite3_column_bytes(s, column)))
             : std::string();
  };
  size_t visited = 0;
  LabelledPrediction row;
  try {
    for (;;) {
      const int rc = sqlite3_step(s);
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) throw StoreError(p + ": cannot read predictions: " + sqlite3_errmsg(db));
      row.id = sqlite3_column_int64(s, 0);
      row.request_id = text(1);
      row.time_ms = sqlite3_column_int64(s, 2);
      row.model = text(3);
      row.version = text(4);
      row.predicted_class = sqlite3_column_int(s, 5);
      // A label written by hand beyond int32 must not wrap into a valid class: -1 instead.
      const int64_t label = sqlite3_column_int64(s, 6);
      row.label = label >= INT32_MIN && label <= INT32_MAX ? static_cast<int32_t>(label) : -1;
      const void* blob = sqlite3_column_blob(s, 7);
      const int bytes = sqlite3_column_bytes(s, 7);
      const auto* b = static_cast<const uint8_t*>(blob);
      row.input.assign(b, b + (blob ? bytes : 0));
      ++visited;
      visit(row);
    }
  } catch (...) {
    select.reset();
    throw;
  }
  select.reset();
  return visited;
}

}  // namespace simdnn
