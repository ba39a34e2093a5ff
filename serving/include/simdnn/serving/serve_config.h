// Helpers for tools/serve's protocol-layer flags (--model-name, --auth-token-file), kept out
// of serve.cc so that tests and other front ends derive the same values.
#pragma once

#include <string>

namespace simdnn::serving {

// The Open Inference Protocol model name for a model file: its stem
// ("models/fashion.safetensors" -> "fashion"), or "model" when that is empty.
std::string default_model_name(const std::string& model_path);

// The token in `path`: its contents with surrounding whitespace (a trailing newline) trimmed.
// Throws std::runtime_error naming the file when it cannot be read or holds no token.
std::string read_auth_token_file(const std::string& path);

}  // namespace simdnn::serving
