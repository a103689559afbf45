#include "app/backend_factory.h"

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/reference_backend.h"
#if defined(MOESERVE_HAVE_CUDA)
#include "core/logging.h"
#include "cuda/backend/cuda_backend.h"
#endif

namespace moe::app {

#if defined(MOESERVE_HAVE_CUDA)
std::vector<std::string> BackendChoices() { return {"auto", "cpu", "reference", "null", "cuda"}; }
std::string BackendNames() { return "cpu | reference | null | cuda"; }
#else
std::vector<std::string> BackendChoices() { return {"auto", "cpu", "reference", "null"}; }
std::string BackendNames() { return "cpu | reference | null"; }
#endif

StatusOr<std::unique_ptr<engine::Backend>> CreateBackend(const BackendChoice& choice) {
  const int threads = choice.threads > 0 ? choice.threads : engine::cpu::PhysicalCoreCount();
#if defined(MOESERVE_HAVE_CUDA)
  // "auto" takes the GPU when the CUDA runtime sees one at run time, else the CPU path below.
  if (choice.name == "cuda" || (choice.name == "auto" && cuda::CudaDeviceCount() > 0)) {
    cuda::CudaBackendOptions options;
    options.deterministic = choice.deterministic;
    options.grouped_gemm = choice.grouped_gemm == "custom" ? cuda::GroupedGemmKernel::kCustom
                                                           : cuda::GroupedGemmKernel::kCublas;
    auto backend = cuda::CudaBackend::Create(options);
    if (backend.ok()) {
      MOE_LOG(INFO) << "backend cuda: " << (*backend)->device_description();
      return std::unique_ptr<engine::Backend>(std::move(backend).value());
    }
    if (choice.name == "cuda") {
      return Status(backend.status().code(),
                    "--backend cuda: " + StatusMessage(backend.status()) +
                        "; choose --backend auto, cpu or reference to run on the CPU");
    }
    MOE_LOG(WARNING) << "backend auto: a CUDA device is present but unusable ("
                     << StatusMessage(backend.status()) << "); running on the CPU";
  }
#endif
  // The optimized CPU backend is the default wherever there is no GPU; the reference backend is
  // the oracle, selectable for checks.
  if (choice.name == "auto" || choice.name == "cpu") {
    MOE_ASSIGN_OR_RETURN(const engine::cpu::CpuIsa isa, engine::cpu::ParseCpuIsa(choice.isa));
    return engine::cpu::CreateCpuBackend(engine::cpu::CpuBackendOptions{threads, isa});
  }
  if (choice.name == "reference") {
    return std::unique_ptr<engine::Backend>(new engine::cpu::ReferenceBackend(threads));
  }
  return InvalidArgument("--backend: unknown backend '", choice.name, "'; choose auto | ",
                         BackendNames());
}

}  // namespace moe::app
