// An MPI job as simdnn sees it: the session (MPI_Init_thread .. MPI_Finalize), the Collective
// that data-parallel training exchanges gradients through (<simdnn/data_parallel.h>), and the
// way a failing process takes the whole job down. MPI's own headers stay inside this module.
#pragma once

#include <memory>

#include "simdnn/data_parallel.h"

namespace simdnn::distributed {

// One per process, for the process's lifetime: MPI cannot be initialised twice. The
// constructor initialises MPI (funneled threads: only the thread that made the session calls
// MPI; the kernels' OpenMP threads never do) and the destructor finalises it. Throws
// std::runtime_error when MPI fails to start or was already started.
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  int rank() const;
  int size() const;
  // The processes of MPI_COMM_WORLD, exchanging over a duplicate of it (a communicator of our
  // own, so nothing else in the process can mix messages with ours). Exchanges that fail throw
  // std::runtime_error.
  Collective& collective();
  // Ends every process of the job with `exit_code` (MPI_Abort): what a process does when it
  // cannot go on, since the others would otherwise wait in the next exchange for ever.
  [[noreturn]] void abort(int exit_code);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace simdnn::distributed
