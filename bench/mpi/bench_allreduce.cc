// The gradient exchange of data-parallel training (docs/distributed.md), timed on its own:
// MPI_Allreduce of the default model's 101,770 float gradients (order of summation up to the
// MPI library) against the fixed-order exchange train --distributed uses (each process
// completes the sum of 1/N of the vector from every process's part, MPI_Alltoallv, then
// MPI_Allgatherv of the sums). Prints the median and the 10th/90th percentiles of each, in
// microseconds, from rank 0.
//
//   mpirun -np 2 build/bench/bench_allreduce [floats] [iterations]
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

struct Stats {
  double p10, median, p90;
};

Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))]; };
  return {at(0.1), at(0.5), at(0.9)};
}

template <class F>
Stats time_it(int iterations, F&& f) {
  std::vector<double> us;
  for (int i = 0; i < iterations + 5; ++i) {
    MPI_Barrier(MPI_COMM_WORLD);
    const auto t0 = std::chrono::steady_clock::now();
    f();
    const auto t1 = std::chrono::steady_clock::now();
    double mine = std::chrono::duration<double, std::micro>(t1 - t0).count(), slowest = 0;
    MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    if (i >= 5) us.push_back(slowest);  // the first few warm the connections up
  }
  return stats(us);
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, n = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  const size_t length = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 101770;
  const int iterations = argc > 2 ? std::atoi(argv[2]) : 200;
  std::vector<float> grad(length, 1.0f / static_cast<float>(rank + 1)), sum(length);

  const Stats allreduce = time_it(iterations, [&] {
    MPI_Allreduce(grad.data(), sum.data(), static_cast<int>(length), MPI_FLOAT, MPI_SUM,
                  MPI_COMM_WORLD);
  });

  auto begin = [&](int d) { return static_cast<size_t>(d) * length / static_cast<size_t>(n); };
  std::vector<int> send_counts(n), send_offsets(n), recv_counts(n), recv_offsets(n);
  for (int d = 0; d < n; ++d) {
    send_counts[d] = static_cast<int>(begin(d + 1) - begin(d));
    send_offsets[d] = static_cast<int>(begin(d));
    recv_counts[d] = static_cast<int>(begin(rank + 1) - begin(rank));
    recv_offsets[d] = d * recv_counts[d];
  }
  const size_t mine = begin(rank + 1) - begin(rank);
  std::vector<float> parts(mine * static_cast<size_t>(n)), part(mine);
  const Stats fixed = time_it(iterations, [&] {
    MPI_Alltoallv(grad.data(), send_counts.data(), send_offsets.data(), MPI_FLOAT, parts.data(),
                  recv_counts.data(), recv_offsets.data(), MPI_FLOAT, MPI_COMM_WORLD);
    // The fixed order: process 0's part + process 1's + ... (a tree in train; same work).
    std::copy_n(parts.data(), mine, part.data());
    for (int p = 1; p < n; ++p) {
      for (size_t i = 0; i < mine; ++i) part[i] += parts[static_cast<size_t>(p) * mine + i];
    }
    MPI_Allgatherv(part.data(), static_cast<int>(mine), MPI_FLOAT, sum.data(), send_counts.data(),
                   send_offsets.data(), MPI_FLOAT, MPI_COMM_WORLD);
  });
  if (rank == 0) {
    std::printf("%d processes, %zu floats (%zu bytes), %d iterations\n", n, length,
                length * sizeof(float), iterations);
    std::printf("MPI_Allreduce              median %8.1f us  (p10 %.1f, p90 %.1f)\n",
                allreduce.median, allreduce.p10, allreduce.p90);
    std::printf("fixed order (a2a+gather)   median %8.1f us  (p10 %.1f, p90 %.1f)\n",
                fixed.median, fixed.p10, fixed.p90);
  }
  MPI_Finalize();
  return 0;
}
