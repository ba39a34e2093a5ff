// The prediction store (<simdnn/prediction_store.h>): rows land with every field, the bounded
// queue drops (and counts) instead of blocking, retention prunes by rows and by age, feedback
// finds queued rows and tells unknown from duplicate ids, hostile ids stay data, and a writer
// killed with SIGKILL mid-stream leaves a database that opens cleanly with every batch it
// reported committed.
#include <doctest/doctest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <limits>
#include <string>
#include <thread>

#include "simdnn/prediction_store.h"
#include "tests/io_test_support.h"

namespace simdnn {
namespace test_prediction_store {  // one per file: the test programs are unity builds

using namespace std::chrono_literals;
using test::TempDir;

PredictionRecord make_record(int i, int64_t time_ms = 0) {
  PredictionRecord r;
  r.request_id = "req-" + std::to_string(i);
  r.time_ms = time_ms ? time_ms
                      : std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  r.model = "fashion";
  r.version = "3";
  r.predicted_class = i % 10;
  r.confidence = 0.5f;
  r.top_k = {{i % 10, 0.5f}, {(i + 1) % 10, 0.25f}};
  return r;
}

// A plain SQLite connection, as an outside reader (sqlite3 CLI, a retraining job) opens it.
class Db {
 public:
  explicit Db(const std::filesystem::path& path) {
    REQUIRE(sqlite3_open(path.c_str(), &db_) == SQLITE_OK);
    sqlite3_busy_timeout(db_, 5000);
  }
  ~Db() { sqlite3_close(db_); }
  sqlite3* get() { return db_; }
  // The first column of the first row as text ("" for NULL or no row).
  std::string text(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    REQUIRE_MESSAGE(sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) == SQLITE_OK,
                    sqlite3_errmsg(db_));
    std::string out;
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    }
    sqlite3_finalize(s);
    return out;
  }
  long long number(const std::string& sql) {
    const std::string t = text(sql);
    return t.empty() ? -1 : std::stoll(t);
  }
  void exec(const std::string& sql) {
    REQUIRE_MESSAGE(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK,
                    sqlite3_errmsg(db_));
  }

 private:
  sqlite3* db_ = nullptr;
};

// Polls `done` every 10 ms for up to `limit` (a liveness bound, not a speed test).
template <class F>
bool eventually(F&& done, std::chrono::milliseconds limit = 10s) {
  if (test::kSanitized) limit *= 3;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

TEST_CASE("prediction store: rows land with every field, in WAL mode, inputs only when given") {
  TempDir dir("store-rows");
  const auto path = dir / "predictions.db";
  {
    PredictionStore store(path, {.batch_rows = 16, .batch_interval = 20ms});
    for (int i = 0; i < 100; ++i) CHECK(store.record(make_record(i)));
    PredictionRecord with_input = make_record(100);
    with_input.input = {0, 1, 2, 255};
    CHECK(store.record(with_input));
    store.flush();
    const PredictionStoreStats s = store.stats();
    CHECK(s.enqueued == 101);
    CHECK(s.written == 101);
    CHECK(s.dropped == 0);
    CHECK(s.failed == 0);
    CHECK(s.batches >= 7);  // 16 rows per transaction at most

    Db db(path);
    CHECK(db.text("PRAGMA journal_mode") == "wal");
    CHECK(db.number("SELECT count(*) FROM predictions") == 101);
    CHECK(db.text("SELECT model || '/' || version || '/' || predicted_class FROM predictions "
                  "WHERE request_id='req-13'") == "fashion/3/3");
    CHECK(db.text("SELECT top_k FROM predictions WHERE request_id='req-13'") ==
          R"([{"class":3,"probability":0.5},{"class":4,"probability":0.25}])");
    CHECK(db.number("SELECT count(*) FROM predictions WHERE input IS NULL") == 100);
    CHECK(db.text("SELECT hex(input) FROM predictions WHERE request_id='req-100'") == "000102FF");
    CHECK(db.number("SELECT count(*) FROM predictions WHERE feedback_label IS NOT NULL") == 0);
  }
  // The destructor commits what is queued: records made just before it are kept.
  {
    PredictionStore store(path, {.batch_interval = 10s});
    for (int i = 200; i < 210; ++i) store.record(make_record(i));
  }
  Db db(path);
  CHECK(db.number("SELECT count(*) FROM predictions") == 111);
}

TEST_CASE("prediction store: a full queue drops and counts, and record() never waits for the "
          "disk") {
  TempDir dir("store-full");
  const auto path = dir / "predictions.db";
  PredictionStore store(path, {.queue_capacity = 16, .batch_rows = 4, .batch_interval = 10ms});
  store.flush();  // the schema exists before the outside connection locks the database

  // An outside writer holds the write lock: the store's writer waits for it (SQLite's busy
  // timeout, 5 s) with its batch in hand, and nothing drains the queue meanwhile.
  Db blocker(path);
  blocker.exec("BEGIN IMMEDIATE");
  for (int i = 0; i < 4; ++i) REQUIRE(store.record(make_record(i)));
  REQUIRE(eventually([&] { return store.stats().queue_depth == 0; }));  // taken by the writer

  const auto start = std::chrono::steady_clock::now();
  int accepted = 0;
  for (int i = 4; i < 1004; ++i) accepted += store.record(make_record(i));
  const auto took = std::chrono::steady_clock::now() - start;
  // Liveness: 1000 calls finish long before the blocked writer's 5 s busy timeout.
  CHECK(took < 2500ms);
  CHECK(accepted == 16);
  CHECK(store.stats().dropped == 984);
  CHECK(store.stats().queue_depth == 16);

  blocker.exec("COMMIT");
  store.flush();
  const PredictionStoreStats s = store.stats();
  CHECK(s.written + s.failed == 20);
  CHECK(s.enqueued == 20);
  Db db(path);
  CHECK(db.number("SELECT count(*) FROM predictions") == static_cast<long long>(s.written));
}

TEST_CASE("prediction store: retention keeps the newest max_rows rows and drops rows older than "
          "max_age") {
  TempDir dir("store-retention");
  {
    const auto path = dir / "rows.db";
    PredictionStore store(path, {.batch_rows = 32, .batch_interval = 10ms, .max_rows = 50});
    for (int i = 0; i < 120; ++i) store.record(make_record(i));
    store.flush();
    Db db(path);
    REQUIRE(eventually([&] { return db.number("SELECT count(*) FROM predictions") == 50; }));
    CHECK(db.number("SELECT count(*) FROM predictions WHERE request_id='req-69'") == 0);
    CHECK(db.number("SELECT count(*) FROM predictions WHERE request_id='req-70'") == 1);
    CHECK(db.number("SELECT count(*) FROM predictions WHERE request_id='req-119'") == 1);
    CHECK(store.stats().pruned == 70);
  }
  {
    const auto path = dir / "age.db";
    const int64_t two_hours_ago =
        std::chrono::duration_cast<std::chrono::milliseconds>(
            (std::chrono::system_clock::now() - 2h).time_since_epoch())
            .count();
    PredictionStore store(path, {.batch_interval = 10ms, .max_age = 3600s});
    for (int i = 0; i < 10; ++i) store.record(make_record(i, two_hours_ago));
    for (int i = 10; i < 15; ++i) store.record(make_record(i));
    store.flush();
    Db db(path);
    REQUIRE(eventually([&] { return db.number("SELECT count(*) FROM predictions") == 5; }));
    CHECK(db.number("SELECT count(*) FROM predictions WHERE time_ms < " +
                    std::to_string(two_hours_ago + 1000)) == 0);
  }
}

TEST_CASE("prediction store: feedback is recorded once, for queued rows too, unknown and "
          "duplicate ids are told apart") {
  TempDir dir("store-feedback");
  const auto path = dir / "predictions.db";
  // A long batch interval: the record is still queued when its feedback arrives.
  PredictionStore store(path, {.batch_interval = 5s});
  PredictionRecord r = make_record(7);
  r.version = "12";
  REQUIRE(store.record(r));
  FeedbackResult fb = store.record_feedback("", "req-7", 3);
  CHECK(fb.status == FeedbackStatus::kRecorded);
  CHECK(fb.model == "fashion");
  CHECK(fb.version == "12");
  CHECK(fb.predicted_class == 7);

  FeedbackResult again = store.record_feedback("", "req-7", 4);
  CHECK(again.status == FeedbackStatus::kDuplicate);
  CHECK(again.predicted_class == 7);
  CHECK(store.record_feedback("", "req-404", 1).status == FeedbackStatus::kUnknown);
  // Another model's prediction with that id is not this one.
  REQUIRE(store.record(make_record(8)));
  CHECK(store.record_feedback("digits", "req-8", 1).status == FeedbackStatus::kUnknown);
  CHECK(store.record_feedback("fashion", "req-8", 1).status == FeedbackStatus::kRecorded);
  CHECK(store.record_feedback("", "", 1).status == FeedbackStatus::kUnknown);

  Db db(path);
  CHECK(db.number("SELECT feedback_label FROM predictions WHERE request_id='req-7'") == 3);
  CHECK(db.number("SELECT feedback_time_ms > 0 FROM predictions WHERE request_id='req-7'") == 1);
}

TEST_CASE("prediction store: SQL in ids, model names and versions is stored as data") {
  TempDir dir("store-injection");
  const auto path = dir / "predictions.db";
  PredictionStore store(path, {.batch_interval = 10ms});
  const std::vector<std::string> hostile = {
      "x'; DROP TABLE predictions; --",
      "' OR '1'='1",
      "\"); DELETE FROM predictions; --",
      std::string("nul\0byte", 8),
      "req-1' UNION SELECT 1,2,3,4,5 --",
  };
  REQUIRE(store.record(make_record(1)));
  for (size_t i = 0; i < hostile.size(); ++i) {
    PredictionRecord r = make_record(static_cast<int>(i));
    r.request_id = hostile[i];
    r.model = hostile[(i + 1) % hostile.size()];
    r.version = hostile[(i + 2) % hostile.size()];
    REQUIRE(store.record(r));
  }
  for (const std::string& id : hostile) {
    CHECK(store.record_feedback("", id, 5).status == FeedbackStatus::kRecorded);
    CHECK(store.record_feedback("", id, 5).status == FeedbackStatus::kDuplicate);
  }
  // Only the hostile rows got feedback; req-1 is untouched and the table is whole.
  CHECK(store.record_feedback("", "' OR 1=1 --", 5).status == FeedbackStatus::kUnknown);
  Db db(path);
  CHECK(db.number("SELECT count(*) FROM predictions") == 1 + static_cast<long long>(hostile.size()));
  CHECK(db.number("SELECT count(*) FROM predictions WHERE feedback_label IS NULL") == 1);
  CHECK(db.number("SELECT length(CAST(request_id AS BLOB)) FROM predictions WHERE request_id "
                  "LIKE 'nul%'") == 8);
}

TEST_CASE("prediction store: a file that is not a SQLite database is refused with its name") {
  TempDir dir("store-bad");
  const auto path = dir / "not-a-db.db";
  test::write_raw(path, std::vector<uint8_t>(4096, 'x'));
  try {
    PredictionStore store(path);
    FAIL("a text file opened as a prediction store");
  } catch (const StoreError& e) {
    CHECK(test::contains(e.what(), path.string()));
  }
  CHECK_THROWS_AS(PredictionStore(dir / "missing-dir" / "x.db"), StoreError);
  CHECK_THROWS_AS(PredictionStore(dir / "ok.db", {.queue_capacity = 0}), std::invalid_argument);
}

TEST_CASE("prediction store: SIGKILL of the writing process mid-stream loses at most the "
          "uncommitted rows, the database opens cleanly") {
  TempDir dir("store-kill");
  const auto path = dir / "predictions.db";
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    try {
      PredictionStore store(path, {.batch_rows = 100, .batch_interval = 5ms});
      const auto deadline = std::chrono::steady_clock::now() + 60s;
      int i = 0;
      while (store.stats().written < 1000 && std::chrono::steady_clock::now() < deadline) {
        store.record(make_record(i++));
        if (i % 100 == 0) std::this_thread::sleep_for(1ms);
      }
      for (int k = 0; k < 250; ++k) store.record(make_record(i++));  // still streaming
      const uint64_t committed = store.stats().written;
      if (::write(fds[1], &committed, sizeof committed) != sizeof committed) ::_exit(3);
      ::raise(SIGKILL);  // the writer thread is mid-batch or waiting: no destructor runs
    } catch (...) {
      ::_exit(4);
    }
    ::_exit(5);
  }
  ::close(fds[1]);
  uint64_t committed = 0;
  const ssize_t got = ::read(fds[0], &committed, sizeof committed);
  ::close(fds[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(got == static_cast<ssize_t>(sizeof committed));
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
  CHECK(committed >= 1000);

  {
    Db db(path);
    CHECK(db.text("PRAGMA integrity_check") == "ok");
    const long long rows = db.number("SELECT count(*) FROM predictions");
    CHECK(rows >= static_cast<long long>(committed));
    CHECK(rows <= static_cast<long long>(committed) + 100 + 250);
  }
  // The store reopens it and carries on.
  PredictionStore store(path, {.batch_interval = 10ms});
  const long long before = Db(path).number("SELECT count(*) FROM predictions");
  REQUIRE(store.record(make_record(999999)));
  CHECK(store.record_feedback("", "req-999999", 1).status == FeedbackStatus::kRecorded);
  CHECK(Db(path).number("SELECT count(*) FROM predictions") == before + 1);
}

TEST_CASE("prediction store: a database of the first schema (with the time_ms index) opens, "
          "loses that index and keeps its rows, feedback and retention by age") {
  TempDir dir("store-old-schema");
  const auto path = dir / "old.db";
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  {
    Db db(path);
    db.exec("PRAGMA journal_mode=WAL");
    db.exec(
        "CREATE TABLE predictions(id INTEGER PRIMARY KEY, request_id TEXT NOT NULL, time_ms "
        "INTEGER NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL, predicted_class INTEGER "
        "NOT NULL, confidence REAL NOT NULL, top_k TEXT NOT NULL, input BLOB, feedback_label "
        "INTEGER, feedback_time_ms INTEGER);"
        "CREATE INDEX predictions_request_id ON predictions(request_id);"
        "CREATE INDEX predictions_time_ms ON predictions(time_ms);"
        "PRAGMA user_version=1;");
    // Two rows older than a day, then one of now.
    db.exec("INSERT INTO predictions(request_id,time_ms,model,version,predicted_class,confidence,"
            "top_k) VALUES('old-1'," + std::to_string(now - 90'000'000) + ",'m','1',1,0.5,'[]'),"
            "('old-2'," + std::to_string(now - 89'000'000) + ",'m','1',2,0.5,'[]'),"
            "('new-1'," + std::to_string(now) + ",'m','1',3,0.5,'[]')");
  }
  {
    PredictionStore store(path, {.batch_interval = 10ms, .max_age = 86400s});
    CHECK(store.record_feedback("m", "new-1", 3).status == FeedbackStatus::kRecorded);
    Db db(path);
    CHECK(db.number("SELECT count(*) FROM sqlite_master WHERE name='predictions_time_ms'") == 0);
    CHECK(db.number("SELECT count(*) FROM sqlite_master WHERE name='predictions_request_id'") == 1);
    CHECK(db.number("PRAGMA user_version") == 1);
    // Retention by age cuts before the first young row, in id order.
    REQUIRE(eventually([&] { return db.number("SELECT count(*) FROM predictions") == 1; }));
    CHECK(db.text("SELECT request_id FROM predictions") == "new-1");
    CHECK(eventually([&] { return store.stats().pruned == 2; }));
  }
  // Rows whose ages are all beyond max_age all go (no young row to cut at).
  {
    Db db(path);
    db.exec("UPDATE predictions SET time_ms=" + std::to_string(now - 90'000'000));
  }
  PredictionStore store(path, {.batch_interval = 10ms, .max_age = 86400s});
  Db db(path);
  REQUIRE(eventually([&] { return db.number("SELECT count(*) FROM predictions") == 0; }));
}

TEST_CASE("prediction store: top-k text is JSON with the shortest round-tripping probabilities") {
  CHECK(top_k_json({}) == "[]");
  CHECK(top_k_json({{3, 0.5f}, {7, 0.25f}}) ==
        "[{\"class\":3,\"probability\":0.5},{\"class\":7,\"probability\":0.25}]");
  const float p = 0.8123456f;
  const std::string text = top_k_json({{1, p}});
  const size_t at = text.find("\"probability\":") + 14;
  CHECK(std::stof(text.substr(at)) == p);
  CHECK(top_k_json({{2, std::numeric_limits<float>::infinity()}}) ==
        "[{\"class\":2,\"probability\":null}]");
}

}  // namespace test_prediction_store
}  // namespace simdnn
