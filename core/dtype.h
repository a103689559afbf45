// Element types of tensors in checkpoints, activations and caches.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace moe {

enum class DType : uint8_t { kF32, kBF16, kF16, kI32, kI64, kU8 };

size_t DTypeSize(DType dtype);
// "F32", "BF16", ... (the safetensors spelling).
std::string_view DTypeName(DType dtype);
// Parses the safetensors spelling; nullopt for anything else.
std::optional<DType> ParseSafetensorsDType(std::string_view name);

}  // namespace moe
