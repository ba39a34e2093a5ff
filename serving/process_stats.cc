#include "process_stats.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace simdnn::serving {

namespace {

double boot_time_seconds() {
  std::ifstream in("/proc/stat");
  std::string key;
  double value = 0;
  while (in >> key) {
    if (key == "btime") {
      in >> value;
      return value;
    }
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

}  // namespace

std::optional<ProcessStats> read_process_stats() {
  ProcessStats s;
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  {
    std::ifstream statm("/proc/self/statm");
    double size = 0, resident = 0;
    if (!(statm >> size >> resident)) return std::nullopt;
    s.virtual_memory_bytes = size * page;
    s.resident_memory_bytes = resident * page;
  }
  {
    std::ifstream stat_file("/proc/self/stat");
    std::string line;
    if (!std::getline(stat_file, line)) return std::nullopt;
    // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
    const size_t close = line.rfind(')');
    if (close == std::string::npos) return std::nullopt;
    std::istringstream fields(line.substr(close + 2));
    std::string f;
    // Fields from 3 (state): utime is 14, stime 15, starttime 22.
    double utime = 0, stime = 0, starttime = 0;
    for (int i = 3; i <= 22 && fields >> f; ++i) {
      if (i == 14) utime = std::stod(f);
      if (i == 15) stime = std::stod(f);
      if (i == 22) starttime = std::stod(f);
    }
    s.cpu_seconds = (utime + stime) / ticks;
    s.start_time_seconds = boot_time_seconds() + starttime / ticks;
  }
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    size_t n = 0;
    while (const dirent* e = ::readdir(dir)) {
      if (e->d_name[0] != '.') ++n;
    }
    ::closedir(dir);
    s.open_fds = static_cast<double>(n > 0 ? n - 1 : 0);  // minus the directory's own fd
  }
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    s.max_fds = limit.rlim_cur == RLIM_INFINITY ? -1 : static_cast<double>(limit.rlim_cur);
  }
  return s;
}

}  // namespace simdnn::serving
