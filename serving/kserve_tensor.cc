#include "serving/kserve_tensor.h"

#include <bit>
#include <cstring>
#include <limits>

namespace moe::serving {

static_assert(std::endian::native == std::endian::little,
              "raw tensor contents are little-endian; a big-endian host needs byte swaps");

namespace {

struct TypeRow {
  KsType type;
  const char* name;
  inference::DataType config;
  int size;
};

constexpr TypeRow kTypes[] = {
    {KsType::kBool, "BOOL", inference::TYPE_BOOL, 1},
    {KsType::kUint8, "UINT8", inference::TYPE_UINT8, 1},
    {KsType::kUint16, "UINT16", inference::TYPE_UINT16, 2},
    {KsType::kUint32, "UINT32", inference::TYPE_UINT32, 4},
    {KsType::kUint64, "UINT64", inference::TYPE_UINT64, 8},
    {KsType::kInt8, "INT8", inference::TYPE_INT8, 1},
    {KsType::kInt16, "INT16", inference::TYPE_INT16, 2},
    {KsType::kInt32, "INT32", inference::TYPE_INT32, 4},
    {KsType::kInt64, "INT64", inference::TYPE_INT64, 8},
    {KsType::kFp16, "FP16", inference::TYPE_FP16, 2},
    {KsType::kFp32, "FP32", inference::TYPE_FP32, 4},
    {KsType::kFp64, "FP64", inference::TYPE_FP64, 8},
    {KsType::kBytes, "BYTES", inference::TYPE_STRING, 0},
    {KsType::kBf16, "BF16", inference::TYPE_BF16, 2},
};

const TypeRow* Row(KsType type) {
  for (const TypeRow& row : kTypes) {
    if (row.type == type) return &row;
  }
  return nullptr;
}

// Far above any real prompt, low enough that element counts never overflow byte sizes.
constexpr int64_t kMaxElements = int64_t{1} << 31;

template <typename T>
T Load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Raw numeric data -> the tensor's value vector.
void DecodeRaw(std::string_view raw, InputTensor* t) {
  const int64_t n = t->num_elements;
  const char* p = raw.data();
  switch (t->type) {
    case KsType::kBool:
      for (int64_t i = 0; i < n; ++i) t->ints.push_back(p[i] != 0 ? 1 : 0);
      break;
    case KsType::kUint8:
      for (int64_t i = 0; i < n; ++i) t->ints.push_back(Load<uint8_t>(p + i));
      break;
    case KsType::kUint16:
      for (int64_t i = 0; i < n; ++i) t->ints.push_back(Load<uint16_t>(p + 2 * i));
      break;
    case KsType::kUint32:
      for (int64_t i = 0; i < n; ++i) t->ints.push_back(Load<uint32_t>(p + 4 * i));
      break;
    case KsType::kUint64:
      for (int64_t i = 0; i < n; ++i) t->u64s.push_back(Load<uint64_t>(p + 8 * i));
      break;
    case KsType::kInt8:
      for (int64_t i = 0; i < n; ++i) t->ints.push_back(Load<int8_t>(p + i));
      break;
    case KsType::kInt16:
      for (int64_t i = 0; i < n; ++i) t->ints.push_back(Load<int16_t>(p + 2 * i));
      break;
    case KsType::kInt32:
      for (int64_t i = 0; i < n; ++i) t->ints.push_back(Load<int32_t>(p + 4 * i));
      break;
    case KsType::kInt64:
      for (int64_t i = 0; i < n; ++i) t->ints.push_back(Load<int64_t>(p + 8 * i));
      break;
    case KsType::kFp32:
      for (int64_t i = 0; i < n; ++i) t->floats.push_back(Load<float>(p + 4 * i));
      break;
    case KsType::kFp64:
      for (int64_t i = 0; i < n; ++i) t->floats.push_back(Load<double>(p + 8 * i));
      break;
    default:
      break;
  }
}

// Typed contents -> the tensor's value vector; an error when the matching field has the wrong
// number of elements.
Status DecodeTyped(const inference::InferTensorContents& c, InputTensor* t) {
  const int64_t n = t->num_elements;
  int64_t given = 0;
  const char* field = "";
  switch (t->type) {
    case KsType::kBool:
      given = c.bool_contents_size();
      field = "bool_contents";
      for (bool b : c.bool_contents()) t->ints.push_back(b ? 1 : 0);
      break;
    case KsType::kInt8:
    case KsType::kInt16:
    case KsType::kInt32:
      given = c.int_contents_size();
      field = "int_contents";
      for (int32_t v : c.int_contents()) t->ints.push_back(v);
      break;
    case KsType::kInt64:
      given = c.int64_contents_size();
      field = "int64_contents";
      for (int64_t v : c.int64_contents()) t->ints.push_back(v);
      break;
    case KsType::kUint8:
    case KsType::kUint16:
    case KsType::kUint32:
      given = c.uint_contents_size();
      field = "uint_contents";
      for (uint32_t v : c.uint_contents()) t->ints.push_back(v);
      break;
    case KsType::kUint64:
      given = c.uint64_contents_size();
      field = "uint64_contents";
      for (uint64_t v : c.uint64_contents()) t->u64s.push_back(v);
      break;
    case KsType::kFp32:
      given = c.fp32_contents_size();
      field = "fp32_contents";
      for (float v : c.fp32_contents()) t->floats.push_back(v);
      break;
    case KsType::kFp64:
      given = c.fp64_contents_size();
      field = "fp64_contents";
      for (double v : c.fp64_contents()) t->floats.push_back(v);
      break;
    case KsType::kBytes:
      given = c.bytes_contents_size();
      field = "bytes_contents";
      for (const std::string& v : c.bytes_contents()) t->bytes.push_back(v);
      break;
    default:
      break;
  }
  if (given != n) {
    return InvalidArgument("input '", t->name, "': contents.", field, " has ", given,
                           " elements; the shape needs ", n);
  }
  return OkStatus();
}

void AddOutput(std::string_view name, const char* datatype, std::vector<int64_t> shape,
               std::string raw, inference::ModelInferResponse* response) {
  auto* out = response->add_outputs();
  out->set_name(std::string(name));
  out->set_datatype(datatype);
  for (int64_t d : shape) out->add_shape(d);
  response->add_raw_output_contents(std::move(raw));
}

template <typename T>
std::string RawOf(std::span<const T> values) {
  std::string raw(values.size() * sizeof(T), '\0');
  if (!values.empty()) std::memcpy(raw.data(), values.data(), raw.size());
  return raw;
}

}  // namespace

KsType KsTypeFromName(std::string_view name) {
  for (const TypeRow& row : kTypes) {
    if (name == row.name) return row.type;
  }
  return KsType::kInvalid;
}

const char* KsTypeName(KsType type) {
  const TypeRow* row = Row(type);
  return row != nullptr ? row->name : "INVALID";
}

inference::DataType KsConfigType(KsType type) {
  const TypeRow* row = Row(type);
  return row != nullptr ? row->config : inference::TYPE_INVALID;
}

int KsTypeSize(KsType type) {
  const TypeRow* row = Row(type);
  return row != nullptr ? row->size : 0;
}

Status CheckInputEncoding(const inference::ModelInferRequest& request) {
  const int raw = request.raw_input_contents_size();
  if (raw == 0) return OkStatus();
  if (raw != request.inputs_size()) {
    return InvalidArgument("raw_input_contents has ", raw, " entries for ", request.inputs_size(),
                           " inputs; give one per input, in the order of `inputs`");
  }
  for (const auto& input : request.inputs()) {
    if (input.has_contents()) {
      return InvalidArgument("input '", input.name(),
                             "': typed contents cannot be mixed with raw_input_contents");
    }
  }
  return OkStatus();
}

StatusOr<std::vector<std::string>> DeserializeBytes(std::string_view raw, int64_t expected,
                                                    std::string_view name) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < raw.size()) {
    if (raw.size() - pos < 4) {
      return InvalidArgument("input '", name, "': BYTES element ", out.size(), " at offset ", pos,
                             " has a truncated 4-byte length prefix (", raw.size() - pos,
                             " bytes left)");
    }
    const uint32_t len = Load<uint32_t>(raw.data() + pos);
    pos += 4;
    if (len > raw.size() - pos) {
      return InvalidArgument("input '", name, "': BYTES element ", out.size(), " declares ", len,
                             " bytes but only ", raw.size() - pos, " remain");
    }
    if (static_cast<int64_t>(out.size()) >= expected) {
      return InvalidArgument("input '", name, "': raw BYTES data holds more than the ", expected,
                             " elements of its shape");
    }
    out.emplace_back(raw.substr(pos, len));
    pos += len;
  }
  if (static_cast<int64_t>(out.size()) != expected) {
    return InvalidArgument("input '", name, "': raw BYTES data holds ", out.size(),
                           " elements; the shape needs ", expected);
  }
  return out;
}

void AppendBytesElement(std::string_view element, std::string* raw) {
  const uint32_t len = static_cast<uint32_t>(element.size());
  char prefix[4];
  std::memcpy(prefix, &len, 4);
  raw->append(prefix, 4);
  raw->append(element.data(), element.size());
}

StatusOr<InputTensor> DecodeInput(const inference::ModelInferRequest& request, int index) {
  const auto& input = request.inputs(index);
  InputTensor t;
  t.name = input.name();
  t.type = KsTypeFromName(input.datatype());
  if (t.type == KsType::kInvalid) {
    return InvalidArgument("input '", t.name, "': unknown datatype '", input.datatype(), "'");
  }
  int64_t n = 1;
  for (int64_t d : input.shape()) {
    if (d < 0) {
      return InvalidArgument("input '", t.name, "': shape dimension ", d, " is negative");
    }
    if (d > 0 && n > kMaxElements / d) {
      return InvalidArgument("input '", t.name, "': the shape has too many elements");
    }
    n *= d;
    t.shape.push_back(d);
  }
  t.num_elements = n;
  if (t.type == KsType::kFp16 || t.type == KsType::kBf16) {
    return InvalidArgument("input '", t.name, "': datatype ", input.datatype(),
                           " is not accepted by this server");
  }
  if (request.raw_input_contents_size() > 0) {
    const std::string& raw = request.raw_input_contents(index);
    if (t.type == KsType::kBytes) {
      MOE_ASSIGN_OR_RETURN(t.bytes, DeserializeBytes(raw, n, t.name));
      return t;
    }
    const int64_t want = n * KsTypeSize(t.type);
    if (static_cast<int64_t>(raw.size()) != want) {
      return InvalidArgument("input '", t.name, "': raw_input_contents holds ", raw.size(),
                             " bytes; shape and datatype ", input.datatype(), " need ", want);
    }
    DecodeRaw(raw, &t);
    return t;
  }
  MOE_RETURN_IF_ERROR(DecodeTyped(input.contents(), &t));
  return t;
}

void AddBytesOutput(std::string_view name, std::vector<int64_t> shape,
                    std::span<const std::string> elements,
                    inference::ModelInferResponse* response) {
  std::string raw;
  for (const std::string& e : elements) AppendBytesElement(e, &raw);
  AddOutput(name, "BYTES", std::move(shape), std::move(raw), response);
}

void AddInt32Output(std::string_view name, std::vector<int64_t> shape,
                    std::span<const int32_t> values, inference::ModelInferResponse* response) {
  AddOutput(name, "INT32", std::move(shape), RawOf(values), response);
}

void AddUint32Output(std::string_view name, std::vector<int64_t> shape,
                     std::span<const uint32_t> values, inference::ModelInferResponse* response) {
  AddOutput(name, "UINT32", std::move(shape), RawOf(values), response);
}

void AddInt64Output(std::string_view name, std::vector<int64_t> shape,
                    std::span<const int64_t> values, inference::ModelInferResponse* response) {
  AddOutput(name, "INT64", std::move(shape), RawOf(values), response);
}

void AddFp32Output(std::string_view name, std::vector<int64_t> shape, std::span<const float> values,
                   inference::ModelInferResponse* response) {
  AddOutput(name, "FP32", std::move(shape), RawOf(values), response);
}

const inference::ModelInferResponse::InferOutputTensor* FindOutput(
    const inference::ModelInferResponse& response, std::string_view name) {
  for (const auto& out : response.outputs()) {
    if (out.name() == name) return &out;
  }
  return nullptr;
}

const std::string* FindRawOutput(const inference::ModelInferResponse& response,
                                 std::string_view name) {
  for (int i = 0; i < response.outputs_size(); ++i) {
    if (response.outputs(i).name() == name && i < response.raw_output_contents_size()) {
      return &response.raw_output_contents(i);
    }
  }
  return nullptr;
}

}  // namespace moe::serving
