#include "simdnn/gzip.h"

#include <zlib.h>

#include <climits>
#include <string>

#include "simdnn/io_error.h"

namespace simdnn {

std::vector<uint8_t> gzip_compress(std::span<const uint8_t> bytes, int level) {
  z_stream stream{};
  // windowBits 15 + 16 selects the gzip wrapper instead of zlib's.
  if (deflateInit2(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw IoError("gzip_compress: deflateInit2 failed");
  }
  std::vector<uint8_t> out(deflateBound(&stream, bytes.size()) + 32);
  size_t in_done = 0;
  int result = Z_OK;
  while (result != Z_STREAM_END) {
    // z_stream counts in uInt, so feed at most 1 GiB at a time.
    const size_t in_chunk = std::min<size_t>(bytes.size() - in_done, size_t{1} << 30);
    stream.next_in = const_cast<Bytef*>(bytes.data() + in_done);
    stream.avail_in = static_cast<uInt>(in_chunk);
    if (out.size() - stream.total_out < 64) out.resize(out.size() * 2);
    const size_t out_room = std::min<size_t>(out.size() - stream.total_out, size_t{1} << 30);
    stream.next_out = out.data() + stream.total_out;
    stream.avail_out = static_cast<uInt>(out_room);
    const bool last = in_done + in_chunk == bytes.size();
    result = deflate(&stream, last ? Z_FINISH : Z_NO_FLUSH);
    if (result != Z_OK && result != Z_STREAM_END && result != Z_BUF_ERROR) {
      deflateEnd(&stream);
      throw IoError("gzip_compress: deflate failed with code " + std::to_string(result));
    }
    in_done += in_chunk - stream.avail_in;
  }
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

}  // namespace simdnn
