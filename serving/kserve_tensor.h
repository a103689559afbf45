// KServe v2 tensors on the wire: data type names, decoding one input of a ModelInferRequest
// (from raw_input_contents or from typed contents, whichever the client used) and appending
// output tensors to a ModelInferResponse in raw form.
//
// BYTES elements in raw form are a 4-byte little-endian length followed by the bytes, one after
// the other in row-major order (tritonclient's serialize_byte_tensor). Numeric raw data is
// little-endian, without padding.
//
// Threads: pure functions, called from gRPC callback threads.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "inference/grpc_service.pb.h"

namespace moe::serving {

enum class KsType : uint8_t {
  kInvalid,
  kBool,
  kUint8,
  kUint16,
  kUint32,
  kUint64,
  kInt8,
  kInt16,
  kInt32,
  kInt64,
  kFp16,
  kFp32,
  kFp64,
  kBytes,
  kBf16,
};

// "INT32" -> kInt32; unknown names -> kInvalid.
KsType KsTypeFromName(std::string_view name);
// The v2 protocol name ("BYTES", "INT32", ...).
const char* KsTypeName(KsType type);
// The model-configuration enum (TYPE_STRING for BYTES).
inference::DataType KsConfigType(KsType type);
// Bytes per element in raw form; 0 for BYTES (variable).
int KsTypeSize(KsType type);

// One decoded input tensor. Exactly one of the value vectors is filled, by data type:
// ints (BOOL and signed/unsigned integers up to 32 bits, INT64), u64s (UINT64), floats (FP32,
// FP64) or bytes (BYTES).
struct InputTensor {
  std::string name;
  KsType type = KsType::kInvalid;
  std::vector<int64_t> shape;
  int64_t num_elements = 0;
  std::vector<int64_t> ints;
  std::vector<uint64_t> u64s;
  std::vector<double> floats;
  std::vector<std::string> bytes;
};

// Checks that the request uses one encoding consistently: either raw_input_contents has one
// entry per input and no input has typed contents, or no raw contents are given.
Status CheckInputEncoding(const inference::ModelInferRequest& request);

// Decodes input `index` of `request` (after CheckInputEncoding). Errors are INVALID_ARGUMENT
// naming the tensor: a negative dimension, a data type that cannot be decoded, an element count
// or byte size that does not match the shape, a malformed BYTES element.
StatusOr<InputTensor> DecodeInput(const inference::ModelInferRequest& request, int index);

// Splits raw BYTES data into exactly `expected` elements. `name` is used in errors.
StatusOr<std::vector<std::string>> DeserializeBytes(std::string_view raw, int64_t expected,
                                                    std::string_view name);
// Appends one BYTES element (length prefix + bytes) to `raw`.
void AppendBytesElement(std::string_view element, std::string* raw);

// Appending outputs in raw form: each adds one InferOutputTensor and its raw_output_contents
// entry (the two stay in the same order).
void AddBytesOutput(std::string_view name, std::vector<int64_t> shape,
                    std::span<const std::string> elements, inference::ModelInferResponse* response);
void AddInt32Output(std::string_view name, std::vector<int64_t> shape,
                    std::span<const int32_t> values, inference::ModelInferResponse* response);
void AddUint32Output(std::string_view name, std::vector<int64_t> shape,
                     std::span<const uint32_t> values, inference::ModelInferResponse* response);
void AddInt64Output(std::string_view name, std::vector<int64_t> shape,
                    std::span<const int64_t> values, inference::ModelInferResponse* response);
void AddFp32Output(std::string_view name, std::vector<int64_t> shape, std::span<const float> values,
                   inference::ModelInferResponse* response);

// Reading outputs back (clients and tests): the raw contents of output `name`, or null.
const std::string* FindRawOutput(const inference::ModelInferResponse& response,
                                 std::string_view name);
const inference::ModelInferResponse::InferOutputTensor* FindOutput(
    const inference::ModelInferResponse& response, std::string_view name);

}  // namespace moe::serving
