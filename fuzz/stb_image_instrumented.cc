// stb_image's decoder compiled into the fuzz target itself, with the fuzzer's coverage and
// sanitizer instrumentation. Debian ships stb as a prebuilt libstb.so, which libFuzzer cannot
// see into (no coverage feedback, no ASan checks inside the decoder); definitions in the
// executable take precedence over the shared library's, so libsimdnn's calls land here.
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
