#include "simdnn/serving/model_repository.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "simdnn/io_error.h"
#include "simdnn/model_file.h"

namespace simdnn::serving {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kModelFileName = "model.safetensors";

// One JSON line on stderr per repository event (the access log is for requests).
void log_event(json event) {
  const std::string line = event.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

bool parse_positive(std::string_view s, int64_t& out) {
  if (s.empty()) return false;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && out > 0;
}

// Model names appear in URL paths and metric labels: letters, digits, '_', '-', '.', not
// starting with '.', at most 128 characters.
bool valid_model_name(std::string_view name) {
  if (name.empty() || name.size() > 128 || name[0] == '.') return false;
  return std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '_' || c == '-' || c == '.';
  });
}

// FNV-1a, then the splitmix64 finalizer so that ids differing in the last character spread
// over every bucket.
uint64_t hash_id(std::string_view id) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : id) h = (h ^ c) * 1099511628211ull;
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

}  // namespace

VersionPolicy parse_version_policy(std::string_view text) {
  VersionPolicy p;
  if (text == "all") {
    p.kind = VersionPolicy::Kind::kAll;
    return p;
  }
  if (text.starts_with("latest:")) {
    int64_t n = 0;
    if (!parse_positive(text.substr(7), n)) {
      throw std::invalid_argument("version policy \"" + std::string(text) +
                                  "\": latest:N needs a positive integer N");
    }
    p.kind = VersionPolicy::Kind::kLatest;
    p.latest = static_cast<size_t>(n);
    return p;
  }
  if (text.starts_with("specific:")) {
    p.kind = VersionPolicy::Kind::kSpecific;
    std::string_view rest = text.substr(9);
    while (true) {
      const size_t comma = rest.find(',');
      int64_t v = 0;
      if (!parse_positive(rest.substr(0, comma), v)) {
        throw std::invalid_argument("version policy \"" + std::string(text) +
                                    "\": specific:V,V,... needs positive integer versions");
      }
      p.versions.push_back(v);
      if (comma == std::string_view::npos) break;
      rest = rest.substr(comma + 1);
    }
    return p;
  }
  throw std::invalid_argument("version policy \"" + std::string(text) +
                              "\": expected latest:N, specific:V[,V...] or all");
}

CanarySpec parse_canary(std::string_view text) {
  const size_t a = text.find(':');
  const size_t b = a == std::string_view::npos ? a : text.find(':', a + 1);
  const auto fail = [&](const char* why) {
    return std::invalid_argument("canary \"" + std::string(text) + "\": " + why +
                                 " (expected NAME:VERSION:PERCENT, e.g. fashion:3:10)");
  };
  if (b == std::string_view::npos) throw fail("missing fields");
  CanarySpec c;
  c.model = std::string(text.substr(0, a));
  if (!valid_model_name(c.model)) throw fail("bad model name");
  if (!parse_positive(text.substr(a + 1, b - a - 1), c.version)) throw fail("bad version");
  const std::string_view pct = text.substr(b + 1);
  const auto r = std::from_chars(pct.data(), pct.data() + pct.size(), c.percent);
  if (pct.empty() || r.ec != std::errc() || r.ptr != pct.data() + pct.size() ||
      !(c.percent >= 0 && c.percent <= 100)) {
    throw fail("PERCENT must be a number in 0..100");
  }
  return c;
}

ModelVersion::ModelVersion(std::string name_, std::string version_, int64_t number_, Model model_)
    : name(std::move(name_)),
      version(std::move(version_)),
      number(number_),
      model([&] {
        // Responses name the served version; the file's own label is not it in a repository.
        model_.info().version = version;
        return std::move(model_);
      }()),
      writer(model.info(), model.num_classes(), FloatStyle::kShortest),
      version_json(json(version).dump(-1, ' ', false, json::error_handler_t::replace)),
      name_json(json(name).dump(-1, ' ', false, json::error_handler_t::replace)) {}

// ---- ModelSet -------------------------------------------------------------------------------

const ModelSet::Entry* ModelSet::find(std::string_view name) const {
  auto it = models_.find(name);
  return it == models_.end() ? nullptr : &it->second;
}

Resolution ModelSet::resolve(std::string_view name, std::optional<std::string_view> version,
                             std::string_view request_id) const {
  Resolution r;
  const Entry* entry = find(name);
  if (!entry) {
    if (unloaded(name)) {
      r.status = 503;
      r.error = "model \"" + std::string(name) + "\" is unloaded (POST /v2/repository/models/" +
                std::string(name) + "/load to load it)";
    } else {
      r.status = 404;
      r.error = "unknown model \"" + std::string(name) + "\"";
    }
    return r;
  }
  if (version) {
    for (const auto& v : entry->versions) {
      if (v->version == *version) {
        r.version = v;
        return r;
      }
    }
    std::string live;
    for (const auto& v : entry->versions) live += (live.empty() ? "\"" : ", \"") + v->version + "\"";
    r.status = 404;
    r.error = "model \"" + std::string(name) + "\" has no live version \"" +
              std::string(*version) + "\" (live: " + live + ")";
    return r;
  }
  r.version = entry->primary;
  if (entry->canary && entry->canary_percent > 0 &&
      static_cast<double>(hash_id(request_id) % 10000) < entry->canary_percent * 100) {
    r.version = entry->canary;
  }
  return r;
}

// ---- ModelRepository ------------------------------------------------------------------------

struct ModelRepository::Candidate {
  std::string name;
  int64_t number = 1;
  fs::path path;
  FileIdentity identity;
  std::string error;  // set when the file cannot even be stat'ed
};

ModelRepository::ModelRepository(RepositoryOptions options, Metrics& metrics)
    : options_(std::move(options)), metrics_(metrics) {
  if (options_.repository.empty() == options_.model_file.empty()) {
    throw std::invalid_argument("give a model repository directory or a model file (not both)");
  }
  if (options_.poll_seconds < 0) throw std::invalid_argument("poll seconds must be >= 0");
  if (!options_.model_file.empty() && options_.model_file_name.empty()) {
    options_.model_file_name = options_.model_file.stem().string();
  }
  if (!options_.repository.empty() && !fs::is_directory(options_.repository)) {
    throw IoError("model repository " + options_.repository.string() + ": not a directory");
  }
  live_.store(std::make_shared<const ModelSet>());
  std::map<std::string, std::vector<std::string>> failures;
  {
    std::lock_guard lock(reload_mutex_);
    failures = reload_locked(nullptr);
  }
  if (live()->models().empty()) {
    std::string why;
    for (const auto& [name, list] : failures) {
      for (const std::string& f : list) why += (why.empty() ? "" : "; ") + f;
    }
    const std::string where = options_.model_file.empty() ? "model repository " +
                                                                options_.repository.string()
                                                          : options_.model_file.string();
    if (!why.empty() && !load_failed_other_than_data_) throw DataError(why);
    throw IoError(why.empty() ? "no model found in " + where : why);
  }
  poller_ = std::thread([this] { poll_loop(); });
}

ModelRepository::ModelRepository(Model model, std::string name, Metrics& metrics)
    : metrics_(metrics), fixed_(true) {
  std::string version = model.info().version.empty() ? "1" : model.info().version;
  auto v = std::make_shared<ModelVersion>(name, version, 1, std::move(model));
  v->series = metrics_.model_series(v->name, v->version);
  auto set = std::make_shared<ModelSet>();
  ModelSet::Entry& e = set->models_[name];
  e.versions.push_back(v);
  e.primary = v;
  publish(std::move(set));
}

ModelRepository::~ModelRepository() {
  {
    std::lock_guard lock(poll_mutex_);
    stop_ = true;
  }
  poll_cv_.notify_all();
  if (poller_.joinable()) poller_.join();
}

std::vector<ModelRepository::Candidate> ModelRepository::scan(const std::string* only) {
  std::vector<Candidate> out;
  const auto stat = [](Candidate& c) {
    struct ::stat st {};
    if (::stat(c.path.c_str(), &st) != 0) {
      c.error = c.path.string() + ": " + std::strerror(errno);
      return;
    }
    if (!S_ISREG(st.st_mode)) {
      c.error = c.path.string() + ": not a regular file";
      return;
    }
    c.identity.device = static_cast<uint64_t>(st.st_dev);
    c.identity.inode = static_cast<uint64_t>(st.st_ino);
    c.identity.size = static_cast<uint64_t>(st.st_size);
    c.identity.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
    c.identity.ctime_ns = int64_t{st.st_ctim.tv_sec} * 1000000000 + st.st_ctim.tv_nsec;
  };
  if (!options_.model_file.empty()) {
    if (only && *only != options_.model_file_name) return out;
    Candidate c;
    c.name = options_.model_file_name;
    c.path = options_.model_file;
    stat(c);
    out.push_back(std::move(c));
    return out;
  }
  const auto ignore = [&](const fs::path& p, const char* why) {
    if (ignored_logged_.insert(p).second) {
      log_event({{"event", "model_repository_ignored"}, {"path", p.string()}, {"reason", why}});
    }
  };
  std::error_code ec;
  for (const fs::directory_entry& model_dir : fs::directory_iterator(options_.repository, ec)) {
    const std::string name = model_dir.path().filename().string();
    if (only && name != *only) continue;
    if (!model_dir.is_directory(ec)) {
      ignore(model_dir.path(), "not a directory");
      continue;
    }
    if (!valid_model_name(name)) {
      ignore(model_dir.path(), "model names use letters, digits, '_', '-' and '.'");
      continue;
    }
    std::error_code vec;
    for (const fs::directory_entry& version_dir : fs::directory_iterator(model_dir.path(), vec)) {
      const std::string v = version_dir.path().filename().string();
      // Hidden entries are skipped without a log line: promote fills ".tmp-promote-<pid>"
      // before renaming it to its version number, and one event per such folder would only
      // be noise (and grow ignored_logged_ with every promotion).
      if (v.starts_with('.')) continue;
      int64_t number = 0;
      if (!version_dir.is_directory(vec) || !parse_positive(v, number) ||
          std::to_string(number) != v) {
        ignore(version_dir.path(), "versions are directories named by a positive integer");
        continue;
      }
      Candidate c;
      c.name = name;
      c.number = number;
      c.path = version_dir.path() / kModelFileName;
      if (!fs::exists(c.path, vec)) {
        ignore(version_dir.path(), "no model.safetensors in it");
        continue;
      }
      ignored_logged_.erase(version_dir.path());
      stat(c);
      out.push_back(std::move(c));
    }
  }
  if (ec) {
    // Not "every model is gone": the reload is abandoned and the live set stays.
    throw IoError("model repository " + options_.repository.string() + ": " + ec.message());
  }
  return out;
}

std::shared_ptr<const ModelVersion> ModelRepository::load_version(const Candidate& c,
                                                                   std::string* error) {
  if (!c.error.empty()) {
    *error = c.error;
    load_failed_other_than_data_ = true;
    return nullptr;
  }
  try {
    Model model = load_model(c.path);
    std::string version = std::to_string(c.number);
    if (!options_.model_file.empty()) {
      version = model.info().version.empty() ? "1" : model.info().version;
    }
    auto v = std::make_shared<ModelVersion>(c.name, version, c.number, std::move(model));
    v->file = c.path;
    v->file_identity = c.identity;
    v->series = metrics_.model_series(v->name, v->version);
    return v;
  } catch (const DataError& e) {
    *error = e.what();
    return nullptr;
  } catch (const std::exception& e) {
    *error = e.what();
    load_failed_other_than_data_ = true;
    return nullptr;
  }
}

std::map<std::string, std::vector<std::string>> ModelRepository::reload_locked(
    const std::string* only) {
  std::map<std::string, std::vector<std::string>> failures;
  if (fixed_) return failures;
  const std::shared_ptr<const ModelSet> current = live();
  std::map<std::string, std::vector<Candidate>> by_name;
  for (Candidate& c : scan(only)) by_name[c.name].push_back(std::move(c));

  auto next = std::make_shared<ModelSet>();
  next->unloaded_ = unloaded_;
  if (only) {
    next->models_ = current->models_;
    next->models_.erase(*only);
  }
  for (auto& named : by_name) {
    // Not a structured binding: clang 14 (the fuzz and TSan builds) refuses to capture one in
    // the lambdas below.
    const auto& name = named.first;
    auto& candidates = named.second;
    if (unloaded_.count(name)) continue;
    std::sort(candidates.begin(), candidates.end(),
              [](const Candidate& a, const Candidate& b) { return a.number > b.number; });
    const ModelSet::Entry* old = current->find(name);
    const auto live_as = [&](int64_t number) -> std::shared_ptr<const ModelVersion> {
      if (!old) return nullptr;
      for (const auto& v : old->versions) {
        if (v->number == number) return v;
      }
      return nullptr;
    };
    // The version for c: the live one while its file is unchanged, else a fresh load. A file
    // that fails keeps the live object it would have replaced (if any) and is not retried
    // until it changes.
    const auto get = [&](const Candidate& c) -> std::shared_ptr<const ModelVersion> {
      std::shared_ptr<const ModelVersion> existing = live_as(c.number);
      if (existing && c.error.empty() && existing->file == c.path &&
          existing->file_identity == c.identity) {
        return existing;
      }
      auto failed = failed_.find(c.path);
      if (failed != failed_.end() && failed->second == c.identity) {
        return existing;
      }
      std::string error;
      std::shared_ptr<const ModelVersion> loaded = load_version(c, &error);
      if (loaded) {
        failed_.erase(c.path);
        failure_reason_.erase(c.path);
        return loaded;
      }
      failed_[c.path] = c.identity;
      failure_reason_[c.path] = error;
      metrics_.count_load_failure(c.name);
      failures[c.name].push_back(c.name + " version " + std::to_string(c.number) + ": " + error);
      log_event({{"event", "model_load_failed"},
                 {"model", c.name},
                 {"version", c.number},
                 {"file", c.path.string()},
                 {"error", error},
                 {"serving", existing ? existing->version : std::string()}});
      return existing;
    };

    const bool has_canary = options_.canary && options_.canary->model == name;
    const VersionPolicy policy = [&] {
      auto it = options_.policies.find(name);
      return it == options_.policies.end() ? VersionPolicy{} : it->second;
    }();
    ModelSet::Entry entry;
    for (const Candidate& c : candidates) {
      if (has_canary && c.number == options_.canary->version) continue;
      const bool wanted =
          policy.kind == VersionPolicy::Kind::kAll ||
          (policy.kind == VersionPolicy::Kind::kLatest && entry.versions.size() < policy.latest) ||
          (policy.kind == VersionPolicy::Kind::kSpecific &&
           std::count(policy.versions.begin(), policy.versions.end(), c.number) > 0);
      if (!wanted) continue;
      if (auto v = get(c)) entry.versions.push_back(std::move(v));
    }
    if (!entry.versions.empty()) entry.primary = entry.versions.front();
    if (has_canary) {
      for (const Candidate& c : candidates) {
        if (c.number != options_.canary->version) continue;
        if (auto v = get(c)) {
          if (entry.primary) {
            entry.canary = v;
            entry.canary_percent = options_.canary->percent;
          } else {
            entry.primary = v;
          }
          entry.versions.push_back(std::move(v));
          std::sort(entry.versions.begin(), entry.versions.end(),
                    [](const auto& a, const auto& b) { return a->number > b->number; });
        }
      }
    }
    if (!entry.versions.empty()) next->models_[name] = std::move(entry);
  }
  publish(std::move(next));
  reloads_.fetch_add(1);
  return failures;
}

void ModelRepository::publish(std::shared_ptr<ModelSet> set) {
  const std::shared_ptr<const ModelSet> previous = live();
  std::vector<LiveModelInfo> infos;
  for (const auto& [name, entry] : set->models_) {
    for (const auto& v : entry.versions) {
      const ModelInfo& info = v->model.info();
      infos.push_back({name, v->version, info.input_height, info.input_width, v->model.num_classes()});
      const ModelSet::Entry* was = previous ? previous->find(name) : nullptr;
      const bool same = was && std::find(was->versions.begin(), was->versions.end(), v) !=
                                   was->versions.end();
      if (!same) {
        log_event({{"event", "model_version_live"},
                   {"model", name},
                   {"version", v->version},
                   {"file", v->file.string()},
                   {"role", v == entry.canary ? "canary" : v == entry.primary ? "primary" : "pinned"}});
      }
    }
  }
  if (previous) {
    for (const auto& [name, entry] : previous->models_) {
      const ModelSet::Entry* now = set->find(name);
      for (const auto& v : entry.versions) {
        if (!now || std::find(now->versions.begin(), now->versions.end(), v) == now->versions.end()) {
          log_event({{"event", "model_version_retired"}, {"model", name}, {"version", v->version}});
        }
      }
    }
  }
  live_.store(std::shared_ptr<const ModelSet>(std::move(set)), std::memory_order_release);
  metrics_.set_live_models(infos);
}

void ModelRepository::reload() {
  std::lock_guard lock(reload_mutex_);
  reload_locked(nullptr);
}

void ModelRepository::request_reload() {
  {
    std::lock_guard lock(poll_mutex_);
    reload_requested_ = true;
  }
  poll_cv_.notify_all();
}

LoadOutcome ModelRepository::load(const std::string& name) {
  std::lock_guard lock(reload_mutex_);
  if (fixed_) return {400, "this server's model was given in memory: there is nothing to load"};
  const bool was_unloaded = unloaded_.erase(name) > 0;
  // An explicit load retries the files that failed before, changed or not.
  const fs::path model_dir = options_.model_file.empty() ? options_.repository / name : fs::path();
  std::erase_if(failed_, [&](const auto& f) {
    return options_.model_file.empty() ? f.first.parent_path().parent_path() == model_dir
                                       : f.first == options_.model_file;
  });
  const auto failures = reload_locked(&name);
  const std::shared_ptr<const ModelSet> now = live();
  if (!now->find(name)) {
    auto it = failures.find(name);
    if (it != failures.end()) return {400, it->second.front()};
    if (was_unloaded) unloaded_.insert(name);
    return {404, "no model \"" + name + "\" in the repository"};
  }
  if (auto it = failures.find(name); it != failures.end()) {
    return {400, it->second.front() + " (the versions already live keep serving)"};
  }
  return {200, ""};
}

LoadOutcome ModelRepository::unload(const std::string& name) {
  std::lock_guard lock(reload_mutex_);
  if (fixed_) return {400, "this server's model was given in memory: it cannot be unloaded"};
  const std::shared_ptr<const ModelSet> current = live();
  if (!current->find(name)) {
    if (unloaded_.count(name)) return {200, ""};
    return {404, "no model \"" + name + "\" is loaded"};
  }
  unloaded_.insert(name);
  auto next = std::make_shared<ModelSet>(*current);
  next->models_.erase(name);
  next->unloaded_ = unloaded_;
  publish(std::move(next));
  return {200, ""};
}

std::vector<RepositoryIndexEntry> ModelRepository::index() {
  const std::shared_ptr<const ModelSet> now = live();
  std::vector<RepositoryIndexEntry> out;
  if (fixed_) {
    for (const auto& [name, entry] : now->models_) {
      for (const auto& v : entry.versions) out.push_back({name, v->version, "READY", ""});
    }
    return out;
  }
  std::lock_guard lock(reload_mutex_);
  std::vector<Candidate> candidates = scan(nullptr);
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    return a.name != b.name ? a.name < b.name : a.number > b.number;
  });
  for (const Candidate& c : candidates) {
    RepositoryIndexEntry e{c.name, std::to_string(c.number), "UNAVAILABLE", ""};
    const ModelSet::Entry* entry = now->find(c.name);
    std::shared_ptr<const ModelVersion> live_version;
    if (entry) {
      for (const auto& v : entry->versions) {
        if (v->number == c.number) live_version = v;
      }
    }
    if (live_version) {
      e.version = live_version->version;
      e.state = "READY";
    } else if (unloaded_.count(c.name)) {
      e.reason = "unloaded";
    } else if (auto it = failure_reason_.find(c.path); it != failure_reason_.end()) {
      e.reason = it->second;
    } else {
      e.reason = "not selected by the version policy";
    }
    out.push_back(std::move(e));
  }
  return out;
}

void ModelRepository::poll_loop() {
  std::unique_lock lock(poll_mutex_);
  while (!stop_) {
    const auto wake = [this] { return stop_ || reload_requested_; };
    if (options_.poll_seconds > 0) {
      poll_cv_.wait_for(lock, std::chrono::seconds(options_.poll_seconds), wake);
    } else {
      poll_cv_.wait(lock, wake);
    }
    if (stop_) break;
    reload_requested_ = false;
    lock.unlock();
    try {
      reload();
    } catch (const std::exception& e) {
      log_event({{"event", "model_repository_reload_failed"}, {"error", e.what()}});
    }
    lock.lock();
  }
}

}  // namespace simdnn::serving
