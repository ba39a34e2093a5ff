// Internal: the process_* metrics, read from /proc as Python's prometheus_client does on
// Linux, so dashboards built for it work unchanged.
#pragma once

#include <optional>

namespace simdnn::serving {

struct ProcessStats {
  double resident_memory_bytes = 0;  // /proc/self/statm resident * page size
  double virtual_memory_bytes = 0;   // /proc/self/statm size * page size
  double cpu_seconds = 0;            // /proc/self/stat utime + stime, in seconds
  double open_fds = 0;               // entries of /proc/self/fd
  double max_fds = 0;                // RLIMIT_NOFILE soft limit
  double start_time_seconds = 0;     // boot time (/proc/stat btime) + starttime / ticks
};

// std::nullopt where /proc is unavailable (not Linux, or not mounted).
std::optional<ProcessStats> read_process_stats();

}  // namespace simdnn::serving
