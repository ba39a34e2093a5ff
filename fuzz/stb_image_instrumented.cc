// stb_image's decoder compiled into the fuzz target itself, with the fuzzer's coverage and
// sanitizer instrumentation. Debian ships stb as a prebuilt libstb.so, which libFuzzer cannot
// see into (no coverage feedback, no ASan checks inside the decoder); definitions in the
// executable take precedence over the shared library's, so libsimdnn's calls land here.
//
// Built as Debian builds libstb.so, with stb's internal asserts compiled out: the fuzzer tests
// the decoder that ships. (With asserts on, stb 2.27's JPEG Huffman decoder reads out of bounds
// inside its own STBI_ASSERT on a corrupt code; the shipped library reports "bad huffman code".)
#define STBI_ASSERT(x) ((void)0)
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
