#include "cuda/emu/cublas.h"

#include <algorithm>
#include <vector>

#include "core/bf16.h"

struct cublasContext {
  cudaStream_t stream = nullptr;
};

namespace {

bool KnownType(cudaDataType_t t) { return t == CUDA_R_32F || t == CUDA_R_16F || t == CUDA_R_16BF; }

float Load(const void* base, cudaDataType_t t, int64_t index) {
  switch (t) {
    case CUDA_R_32F:
      return static_cast<const float*>(base)[index];
    case CUDA_R_16F:
      return moe::Fp16BitsToFloat(static_cast<const moe::Fp16*>(base)[index].bits);
    case CUDA_R_16BF:
      return moe::ToFloat(static_cast<const moe::Bf16*>(base)[index]);
  }
  return 0.f;
}

void Store(void* base, cudaDataType_t t, int64_t index, float v) {
  switch (t) {
    case CUDA_R_32F:
      static_cast<float*>(base)[index] = v;
      break;
    case CUDA_R_16F:
      static_cast<moe::Fp16*>(base)[index].bits = moe::FloatToFp16Bits(v);
      break;
    case CUDA_R_16BF:
      static_cast<moe::Bf16*>(base)[index] = moe::ToBf16(v);
      break;
  }
}

struct Gemm {
  cublasOperation_t ta, tb;
  int m, n, k;
  float alpha, beta;
  const void* a;
  cudaDataType_t at;
  int lda;
  const void* b;
  cudaDataType_t bt;
  int ldb;
  void* c;
  cudaDataType_t ct;
  int ldc;
};

cublasStatus_t Check(const Gemm& g) {
  if (g.m < 0 || g.n < 0 || g.k < 0) return CUBLAS_STATUS_INVALID_VALUE;
  if (g.ta == CUBLAS_OP_C || g.tb == CUBLAS_OP_C) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (!KnownType(g.at) || !KnownType(g.bt) || !KnownType(g.ct)) return CUBLAS_STATUS_NOT_SUPPORTED;
  // Leading dimensions as cuBLAS checks them: at least the stored rows of each operand.
  if (g.lda < std::max(1, g.ta == CUBLAS_OP_N ? g.m : g.k)) return CUBLAS_STATUS_INVALID_VALUE;
  if (g.ldb < std::max(1, g.tb == CUBLAS_OP_N ? g.k : g.n)) return CUBLAS_STATUS_INVALID_VALUE;
  if (g.ldc < std::max(1, g.m)) return CUBLAS_STATUS_INVALID_VALUE;
  return CUBLAS_STATUS_SUCCESS;
}

// C = alpha op(A) op(B) + beta C, column-major; f32 accumulation over k in ascending order.
// op(A) is unpacked to [m][k] and op(B) to [k][n] f32 first, so the inner loop runs over n
// contiguous floats (vectorised across outputs only; each output's order stays k ascending).
void Run(const Gemm& g) {
  std::vector<float> a(static_cast<size_t>(g.m) * g.k), b(static_cast<size_t>(g.k) * g.n);
  for (int i = 0; i < g.m; ++i) {
    for (int l = 0; l < g.k; ++l) {
      const int64_t idx = g.ta == CUBLAS_OP_N ? i + static_cast<int64_t>(l) * g.lda
                                              : l + static_cast<int64_t>(i) * g.lda;
      a[static_cast<size_t>(i) * g.k + l] = Load(g.a, g.at, idx);
    }
  }
  for (int l = 0; l < g.k; ++l) {
    for (int j = 0; j < g.n; ++j) {
      const int64_t idx = g.tb == CUBLAS_OP_N ? l + static_cast<int64_t>(j) * g.ldb
                                              : j + static_cast<int64_t>(l) * g.ldb;
      b[static_cast<size_t>(l) * g.n + j] = Load(g.b, g.bt, idx);
    }
  }
  std::vector<float> acc(static_cast<size_t>(g.n));
  for (int i = 0; i < g.m; ++i) {
    std::fill(acc.begin(), acc.end(), 0.f);
    const float* a_row = a.data() + static_cast<size_t>(i) * g.k;
    for (int l = 0; l < g.k; ++l) {
      const float av = a_row[l];
      const float* b_row = b.data() + static_cast<size_t>(l) * g.n;
      for (int j = 0; j < g.n; ++j) acc[j] += av * b_row[j];
    }
    for (int j = 0; j < g.n; ++j) {
      const int64_t c_idx = i + static_cast<int64_t>(j) * g.ldc;
      float out = g.alpha * acc[j];
      if (g.beta != 0.f) out += g.beta * Load(g.c, g.ct, c_idx);
      Store(g.c, g.ct, c_idx, out);
    }
  }
}

}  // namespace

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  if (handle == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *handle = new cublasContext();
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t) {
  return handle != nullptr ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void*, size_t) {
  return handle != nullptr ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}

const char* cublasGetStatusName(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR:
      return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}

const char* cublasGetStatusString(cublasStatus_t status) { return cublasGetStatusName(status); }

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
                            cublasOperation_t transb, int m, int n, int k, const void* alpha,
                            const void* A, cudaDataType_t Atype, int lda, const void* B,
                            cudaDataType_t Btype, int ldb, const void* beta, void* C,
                            cudaDataType_t Ctype, int ldc, cublasComputeType_t computeType,
                            cublasGemmAlgo_t) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (computeType != CUBLAS_COMPUTE_32F || alpha == nullptr || beta == nullptr) {
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  const Gemm g{transa,
               transb,
               m,
               n,
               k,
               *static_cast<const float*>(alpha),
               *static_cast<const float*>(beta),
               A,
               Atype,
               lda,
               B,
               Btype,
               ldb,
               C,
               Ctype,
               ldc};
  if (const cublasStatus_t s = Check(g); s != CUBLAS_STATUS_SUCCESS) return s;
  Run(g);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmGroupedBatchedEx(
    cublasHandle_t handle, const cublasOperation_t transa_array[],
    const cublasOperation_t transb_array[], const int m_array[], const int n_array[],
    const int k_array[], const void* alpha_array, const void* const Aarray[], cudaDataType_t Atype,
    const int lda_array[], const void* const Barray[], cudaDataType_t Btype, const int ldb_array[],
    const void* beta_array, void* const Carray[], cudaDataType_t Ctype, const int ldc_array[],
    int group_count, const int group_size[], cublasComputeType_t computeType) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (computeType != CUBLAS_COMPUTE_32F || group_count < 0) return CUBLAS_STATUS_INVALID_VALUE;
  const auto* alphas = static_cast<const float*>(alpha_array);
  const auto* betas = static_cast<const float*>(beta_array);
  std::vector<Gemm> gemms;
  int64_t problem = 0;
  for (int gi = 0; gi < group_count; ++gi) {
    for (int j = 0; j < group_size[gi]; ++j, ++problem) {
      gemms.push_back({transa_array[gi], transb_array[gi], m_array[gi], n_array[gi], k_array[gi],
                       alphas[gi], betas[gi], Aarray[problem], Atype, lda_array[gi],
                       Barray[problem], Btype, ldb_array[gi], Carray[problem], Ctype,
                       ldc_array[gi]});
      if (const cublasStatus_t s = Check(gemms.back()); s != CUBLAS_STATUS_SUCCESS) return s;
    }
  }
  for (const Gemm& g : gemms) Run(g);
  return CUBLAS_STATUS_SUCCESS;
}
