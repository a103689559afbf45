#include "engine/backend.h"

namespace moe::engine {
namespace {

int64_t Rows(const model::TensorEntry& t) { return t.shape.empty() ? 1 : t.shape[0]; }

Status CheckFloat(const model::TensorEntry& t) {
  if (t.dtype != DType::kF32 && t.dtype != DType::kBF16 && t.dtype != DType::kF16) {
    return InvalidArgument(t.file, ": tensor '", t.name, "' has dtype ", DTypeName(t.dtype),
                           "; weights must be F32, BF16 or F16");
  }
  return OkStatus();
}

Status CheckMatrix(const model::TensorEntry& t, int64_t rows, int64_t cols, const char* what) {
  if (t.shape.size() != 2 || t.shape[1] != cols || (rows >= 0 && t.shape[0] != rows)) {
    return InvalidArgument(t.file, ": tensor '", t.name, "' has shape ", t.ShapeString(), "; ",
                           what, " needs [", rows >= 0 ? std::to_string(rows) : "rows", ", ", cols,
                           "]");
  }
  return CheckFloat(t);
}

}  // namespace

StatusOr<LinearShape> CheckLinearSource(const LinearSource& source) {
  if (source.row_blocks.empty()) return InvalidArgument("PackLinear: no row blocks");
  if (!source.biases.empty() && source.biases.size() != source.row_blocks.size()) {
    return InvalidArgument("PackLinear: ", source.biases.size(), " biases for ",
                           source.row_blocks.size(), " row blocks");
  }
  LinearShape shape;
  const model::TensorEntry& first = *source.row_blocks[0];
  shape.cols = first.shape.size() == 2 ? first.shape[1] : -1;
  for (size_t i = 0; i < source.row_blocks.size(); ++i) {
    const model::TensorEntry& t = *source.row_blocks[i];
    MOE_RETURN_IF_ERROR(CheckMatrix(t, -1, shape.cols, "a linear layer"));
    shape.rows += Rows(t);
    if (!source.biases.empty()) {
      const model::TensorEntry& b = *source.biases[i];
      if (b.NumElements() != Rows(t)) {
        return InvalidArgument(b.file, ": bias '", b.name, "' has ", b.NumElements(),
                               " elements for ", Rows(t), " rows");
      }
      MOE_RETURN_IF_ERROR(CheckFloat(b));
    }
  }
  return shape;
}

StatusOr<ExpertsShape> CheckExpertsSource(const ExpertsSource& source) {
  const size_t n = source.gate.size();
  if (n == 0 || source.up.size() != n || source.down.size() != n) {
    return InvalidArgument("PackExperts: gate/up/down lists must be non-empty and equal in size");
  }
  ExpertsShape shape;
  shape.num_experts = static_cast<int>(n);
  const model::TensorEntry& first = *source.gate[0];
  if (first.shape.size() != 2) {
    return InvalidArgument(first.file, ": expert tensor '", first.name, "' must be 2-D, has ",
                           first.ShapeString());
  }
  shape.intermediate = first.shape[0];
  shape.hidden = first.shape[1];
  for (size_t e = 0; e < n; ++e) {
    MOE_RETURN_IF_ERROR(CheckMatrix(*source.gate[e], shape.intermediate, shape.hidden,
                                    "an expert gate projection"));
    MOE_RETURN_IF_ERROR(
        CheckMatrix(*source.up[e], shape.intermediate, shape.hidden, "an expert up projection"));
    MOE_RETURN_IF_ERROR(CheckMatrix(*source.down[e], shape.hidden, shape.intermediate,
                                    "an expert down projection"));
  }
  return shape;
}

}  // namespace moe::engine
