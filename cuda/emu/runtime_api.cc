#include "cuda/emu/runtime_api.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "cuda/emu/grid.h"

namespace moe::cuda::emu {
namespace {

struct Runtime {
  std::mutex mu;
  std::unordered_map<const void*, size_t> allocations;  // device allocations, for cudaFree
  size_t allocated = 0;
};

Runtime& Rt() {
  static Runtime* rt = new Runtime();
  return *rt;
}

thread_local cudaError_t last_error = cudaSuccess;

constexpr size_t kEmulatedMemory = size_t{16} << 30;

}  // namespace

void SetLastError(cudaError_t error) { last_error = error; }

int OccupancyBlocksPerSm(int threads, size_t dynamic_smem) {
  const DeviceModel& d = Device();
  const int by_threads = d.max_threads_per_sm / threads;
  const int by_smem =
      static_cast<int>(d.max_smem_per_sm / static_cast<int64_t>(dynamic_smem + 1024));
  return std::max(0, std::min({by_threads, by_smem, 32}));
}

cudaError_t SetFuncAttribute(const void* fn, cudaFuncAttribute attr, int value) {
  if (fn == nullptr) return cudaErrorInvalidValue;
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || value > Device().max_smem_per_block_optin) return cudaErrorInvalidValue;
    SetMaxDynamicSmem(fn, value);
  }
  return cudaSuccess;
}

}  // namespace moe::cuda::emu

using moe::cuda::emu::Device;

struct CUstream_st {
  unsigned flags;
};
struct CUevent_st {
  std::chrono::steady_clock::time_point when;
  bool recorded;
};

cudaError_t cudaGetDeviceCount(int* count) {
  if (count == nullptr) return cudaErrorInvalidValue;
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  if (device == nullptr) return cudaErrorInvalidValue;
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : cudaErrorInvalidDevice; }

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (value == nullptr || device != 0) return cudaErrorInvalidValue;
  const auto& d = Device();
  switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock:
      *value = d.max_threads_per_block;
      break;
    case cudaDevAttrMaxSharedMemoryPerBlock:
      *value = static_cast<int>(d.default_smem_per_block);
      break;
    case cudaDevAttrMultiProcessorCount:
      *value = d.num_sms;
      break;
    case cudaDevAttrComputeCapabilityMajor:
      *value = d.cc_major;
      break;
    case cudaDevAttrComputeCapabilityMinor:
      *value = d.cc_minor;
      break;
    case cudaDevAttrMaxSharedMemoryPerMultiprocessor:
      *value = static_cast<int>(d.max_smem_per_sm);
      break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin:
      *value = static_cast<int>(d.max_smem_per_block_optin);
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (prop == nullptr || device != 0) return cudaErrorInvalidValue;
  const auto& d = Device();
  std::memset(prop, 0, sizeof(*prop));
  std::strncpy(prop->name, "moeserve CUDA emulator (CPU)", sizeof(prop->name) - 1);
  prop->totalGlobalMem = moe::cuda::emu::kEmulatedMemory;
  prop->sharedMemPerBlock = static_cast<size_t>(d.default_smem_per_block);
  prop->sharedMemPerBlockOptin = static_cast<size_t>(d.max_smem_per_block_optin);
  prop->sharedMemPerMultiprocessor = static_cast<size_t>(d.max_smem_per_sm);
  prop->major = d.cc_major;
  prop->minor = d.cc_minor;
  prop->multiProcessorCount = d.num_sms;
  prop->maxThreadsPerBlock = d.max_threads_per_block;
  prop->maxThreadsPerMultiProcessor = d.max_threads_per_sm;
  prop->warpSize = 32;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
cudaError_t cudaRuntimeGetVersion(int* version) {
  if (version == nullptr) return cudaErrorInvalidValue;
  *version = 0;
  return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* version) { return cudaRuntimeGetVersion(version); }

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  auto& rt = moe::cuda::emu::Rt();
  std::lock_guard<std::mutex> lock(rt.mu);
  if (free_bytes != nullptr) {
    *free_bytes =
        moe::cuda::emu::kEmulatedMemory - std::min(rt.allocated, moe::cuda::emu::kEmulatedMemory);
  }
  if (total_bytes != nullptr) *total_bytes = moe::cuda::emu::kEmulatedMemory;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  if (ptr == nullptr) return cudaErrorInvalidValue;
  const size_t rounded = std::max<size_t>((bytes + 255) / 256 * 256, 256);
  void* p = std::aligned_alloc(256, rounded);
  if (p == nullptr) return cudaErrorMemoryAllocation;
  std::memset(p, 0xa5, rounded);  // fresh device memory is not zero
  auto& rt = moe::cuda::emu::Rt();
  std::lock_guard<std::mutex> lock(rt.mu);
  rt.allocations[p] = rounded;
  rt.allocated += rounded;
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  if (ptr == nullptr) return cudaSuccess;
  auto& rt = moe::cuda::emu::Rt();
  std::lock_guard<std::mutex> lock(rt.mu);
  auto it = rt.allocations.find(ptr);
  if (it == rt.allocations.end()) return cudaErrorInvalidDevicePointer;
  rt.allocated -= it->second;
  rt.allocations.erase(it);
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** ptr, size_t bytes) {
  if (ptr == nullptr) return cudaErrorInvalidValue;
  *ptr = std::aligned_alloc(256, std::max<size_t>((bytes + 255) / 256 * 256, 256));
  return *ptr != nullptr ? cudaSuccess : cudaErrorMemoryAllocation;
}

cudaError_t cudaFreeHost(void* ptr) {
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return cudaSuccess;
  if (dst == nullptr || src == nullptr || kind < cudaMemcpyHostToHost || kind > cudaMemcpyDefault) {
    return cudaErrorInvalidValue;
  }
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t) {
  return cudaMemcpy(dst, src, bytes, kind);
}

cudaError_t cudaMemset(void* ptr, int value, size_t bytes) {
  if (bytes == 0) return cudaSuccess;
  if (ptr == nullptr) return cudaErrorInvalidValue;
  std::memset(ptr, value, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t) {
  return cudaMemset(ptr, value, bytes);
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, 0); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags) {
  if (stream == nullptr) return cudaErrorInvalidValue;
  *stream = new CUstream_st{flags};
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (stream == nullptr) return cudaErrorInvalidResourceHandle;
  delete stream;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t event, unsigned) {
  return event != nullptr ? cudaSuccess : cudaErrorInvalidResourceHandle;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, 0); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned) {
  if (event == nullptr) return cudaErrorInvalidValue;
  *event = new CUevent_st{{}, false};
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  if (event == nullptr) return cudaErrorInvalidResourceHandle;
  delete event;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t) {
  if (event == nullptr) return cudaErrorInvalidResourceHandle;
  event->when = std::chrono::steady_clock::now();
  event->recorded = true;
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  return event != nullptr ? cudaSuccess : cudaErrorInvalidResourceHandle;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (ms == nullptr || start == nullptr || end == nullptr) return cudaErrorInvalidValue;
  if (!start->recorded || !end->recorded) return cudaErrorInvalidResourceHandle;
  *ms = std::chrono::duration<float, std::milli>(end->when - start->when).count();
  return cudaSuccess;
}

cudaError_t cudaGetLastError() {
  const cudaError_t e = moe::cuda::emu::last_error;
  moe::cuda::emu::last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return moe::cuda::emu::last_error; }

const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "cudaSuccess";
    case cudaErrorInvalidValue:
      return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
      return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration:
      return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer:
      return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidDevice:
      return "cudaErrorInvalidDevice";
    case cudaErrorNoDevice:
      return "cudaErrorNoDevice";
    case cudaErrorInvalidResourceHandle:
      return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotSupported:
      return "cudaErrorNotSupported";
    case cudaErrorUnknown:
      return "cudaErrorUnknown";
  }
  return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInvalidConfiguration:
      return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer:
      return "invalid device pointer";
    case cudaErrorInvalidDevice:
      return "invalid device ordinal";
    case cudaErrorNoDevice:
      return "no CUDA-capable device is detected";
    case cudaErrorInvalidResourceHandle:
      return "invalid resource handle";
    case cudaErrorNotSupported:
      return "operation not supported";
    case cudaErrorUnknown:
      return "unknown error";
  }
  return "unknown error";
}
