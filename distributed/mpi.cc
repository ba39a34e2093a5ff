#include "simdnn/distributed/mpi.h"

#include <mpi.h>

#include <climits>
#include <cstring>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

namespace simdnn::distributed {
namespace {

std::string mpi_error(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(text, static_cast<size_t>(length));
}

void check(int code, const char* what) {
  if (code != MPI_SUCCESS) throw std::runtime_error(std::string(what) + ": " + mpi_error(code));
}

// MPI counts and displacements are ints: a message over 2 GiB is refused rather than cut.
std::vector<int> to_ints(std::span<const size_t> values, std::vector<int>* offsets) {
  std::vector<int> out;
  size_t total = 0;
  for (size_t v : values) {
    if (v > INT_MAX || total > INT_MAX) {
      throw std::runtime_error("MPI exchange of over 2 GiB (" + std::to_string(v) + " bytes)");
    }
    if (offsets) offsets->push_back(static_cast<int>(total));
    out.push_back(static_cast<int>(v));
    total += v;
  }
  return out;
}

class MpiCollective final : public Collective {
 public:
  explicit MpiCollective(MPI_Comm comm) : comm_(comm) {
    check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void all_to_all(std::span<const std::byte> head, std::span<const std::byte> send,
                  std::span<const size_t> send_offsets, std::span<const size_t> send_counts,
                  std::span<std::byte> recv, std::span<const size_t> recv_counts) override {
    std::vector<int> recv_offsets;
    const std::vector<int> rc = to_ints(recv_counts, &recv_offsets);
    if (head.empty()) {
      const std::vector<int> sc = to_ints(send_counts, nullptr);
      const std::vector<int> so = to_ints(send_offsets, nullptr);
      check(MPI_Alltoallv(send.data(), sc.data(), so.data(), MPI_BYTE, recv.data(), rc.data(),
                          recv_offsets.data(), MPI_BYTE, comm_),
            "MPI_Alltoallv");
      return;
    }
    // Point to point, two messages to each process: the head, and the part from where it lies,
    // contiguous, so that Open MPI's shared-memory transport can still copy it once, straight
    // from this process's memory into the receiver's (CMA), as it does for MPI_Alltoallv. (A
    // datatype joining head and part, for MPI_Alltoallw, is not contiguous and would travel
    // through a staging copy.) Every head has the same size, so the receiver can split.
    const size_t h = head.size();
    if (h > INT_MAX) throw std::runtime_error("MPI exchange head of over 2 GiB");
    const std::vector<int> sc = to_ints(send_counts, nullptr);
    to_ints(send_offsets, nullptr);  // range check
    std::vector<MPI_Request> requests;
    requests.reserve(4 * static_cast<size_t>(size_));
    auto post = [&](int code, const char* what) {
      if (code != MPI_SUCCESS) {
        for (MPI_Request& r : requests) {
          MPI_Cancel(&r);
          MPI_Request_free(&r);
        }
        check(code, what);
      }
    };
    constexpr int kHeadTag = 1, kPartTag = 2;
    for (int p = 0; p < size_; ++p) {
      const auto u = static_cast<size_t>(p);
      std::byte* at = recv.data() + recv_offsets[u];
      if (recv_counts[u] < h) throw std::logic_error("MPI all_to_all: receive shorter than the head");
      if (p == rank_) {
        std::memcpy(at, head.data(), h);
        std::memcpy(at + h, send.data() + send_offsets[u], send_counts[u]);
        continue;
      }
      requests.emplace_back();
      post(MPI_Irecv(at, static_cast<int>(h), MPI_BYTE, p, kHeadTag, comm_, &requests.back()),
           "MPI_Irecv");
      if (recv_counts[u] > h) {
        requests.emplace_back();
        post(MPI_Irecv(at + h, rc[u] - static_cast<int>(h), MPI_BYTE, p, kPartTag, comm_,
                       &requests.back()),
             "MPI_Irecv");
      }
    }
    for (int p = 0; p < size_; ++p) {
      const auto u = static_cast<size_t>(p);
      if (p == rank_) continue;
      requests.emplace_back();
      post(MPI_Isend(head.data(), static_cast<int>(h), MPI_BYTE, p, kHeadTag, comm_,
                     &requests.back()),
           "MPI_Isend");
      if (sc[u] > 0) {
        requests.emplace_back();
        post(MPI_Isend(send.data() + send_offsets[u], sc[u], MPI_BYTE, p, kPartTag, comm_,
                       &requests.back()),
             "MPI_Isend");
      }
    }
    check(MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE),
          "MPI_Waitall");
  }

  void all_gather(std::span<const std::byte> mine, std::span<std::byte> all,
                  std::span<const size_t> counts) override {
    std::vector<int> offsets;
    const std::vector<int> c = to_ints(counts, &offsets);
    check(MPI_Allgatherv(mine.data(), static_cast<int>(mine.size()), MPI_BYTE, all.data(),
                         c.data(), offsets.data(), MPI_BYTE, comm_),
          "MPI_Allgatherv");
  }

  void all_gather_in_place(std::span<std::byte> all, std::span<const size_t> counts) override {
    std::vector<int> offsets;
    const std::vector<int> c = to_ints(counts, &offsets);
    check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, all.data(), c.data(),
                         offsets.data(), MPI_BYTE, comm_),
          "MPI_Allgatherv");
  }

 private:
  MPI_Comm comm_;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace

class MpiSession::Impl {
 public:
  MPI_Comm comm = MPI_COMM_NULL;
  std::unique_ptr<MpiCollective> collective;
};

MpiSession::MpiSession(int* argc, char*** argv) : impl_(std::make_unique<Impl>()) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) throw std::runtime_error("MPI is already initialised in this process");
  int provided = 0;
  check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  // Errors come back as codes (then exceptions) rather than ending the process inside MPI.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  check(MPI_Comm_dup(MPI_COMM_WORLD, &impl_->comm), "MPI_Comm_dup");
  MPI_Comm_set_errhandler(impl_->comm, MPI_ERRORS_RETURN);
  impl_->collective = std::make_unique<MpiCollective>(impl_->comm);
}

MpiSession::~MpiSession() {
  impl_->collective.reset();
  if (impl_->comm != MPI_COMM_NULL) MPI_Comm_free(&impl_->comm);
  MPI_Finalize();
}

int MpiSession::rank() const { return impl_->collective->rank(); }
int MpiSession::size() const { return impl_->collective->size(); }
Collective& MpiSession::collective() { return *impl_->collective; }

void MpiSession::abort(int exit_code) {
  MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);  // MPI_Abort does not return; should it, the process ends anyway
}

}  // namespace simdnn::distributed
