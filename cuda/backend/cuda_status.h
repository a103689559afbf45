// CUDA / cuBLAS error codes as Status at the Backend boundary (DESIGN.md §7): the op name, the
// error's name and text. Host-only.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <string_view>

#include "core/status.h"

namespace moe::cuda {

// OK for cudaSuccess; otherwise Internal("CudaBackend::<op>: <name> (<text>)"). Invalid-value
// errors from launchers mean the op's arguments passed validation but not the kernel's own
// checks (alignment, size limits): InvalidArgument.
inline Status CudaStatus(cudaError_t err, std::string_view op) {
  if (err == cudaSuccess) return OkStatus();
  if (err == cudaErrorInvalidValue) {
    return InvalidArgument("CudaBackend::", op, ": the kernel rejected the arguments (",
                           cudaGetErrorString(err), ")");
  }
  return Internal("CudaBackend::", op, ": ", cudaGetErrorName(err), " (", cudaGetErrorString(err),
                  ")");
}

inline Status CublasStatus(cublasStatus_t status, std::string_view op) {
  if (status == CUBLAS_STATUS_SUCCESS) return OkStatus();
  return Internal("CudaBackend::", op, ": cuBLAS ", cublasGetStatusName(status), " (",
                  cublasGetStatusString(status), ")");
}

}  // namespace moe::cuda

// Returns the Status of a cudaError_t / cublasStatus_t expression from the enclosing function.
#define MOE_RETURN_IF_CUDA_ERROR(expr, op)               \
  do {                                                   \
    const cudaError_t moe_cuda_err_ = (expr);            \
    if (moe_cuda_err_ != cudaSuccess) {                  \
      return ::moe::cuda::CudaStatus(moe_cuda_err_, op); \
    }                                                    \
  } while (0)

#define MOE_RETURN_IF_CUBLAS_ERROR(expr, op)                    \
  do {                                                          \
    const cublasStatus_t moe_cublas_status_ = (expr);           \
    if (moe_cublas_status_ != CUBLAS_STATUS_SUCCESS) {          \
      return ::moe::cuda::CublasStatus(moe_cublas_status_, op); \
    }                                                           \
  } while (0)
