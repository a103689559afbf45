// The KServe v2 / Triton GRPCInferenceService: health and metadata answered from the gateway,
// ModelInfer / ModelStreamInfer by their reactors (kserve_infer_call.h, kserve_stream_call.h),
// the text and token models described in kserve_text_model.h / kserve_token_model.h. RPCs not
// overridden here (statistics, repository, shared memory, trace, log settings) answer
// UNIMPLEMENTED from the generated base class.
#include "serving/kserve_service.h"

#include "inference/grpc_service.grpc.pb.h"
#include "serving/grpc_status.h"
#include "serving/kserve_infer_call.h"
#include "serving/kserve_model.h"
#include "serving/kserve_stream_call.h"
#include "serving/kserve_text_model.h"
#include "serving/kserve_token_model.h"
#include "serving/version.h"

namespace moe::serving {
namespace {

namespace inf = ::inference;

class KServeService final : public inf::GRPCInferenceService::CallbackService {
 public:
  KServeService(RequestGateway* gateway, const ServerConfig& config)
      : gateway_(gateway), retry_after_ms_(config.retry_after_ms) {
    models_.Add(std::make_unique<KServeTextModel>(config.kserve_text_model, gateway));
    models_.Add(std::make_unique<KServeTokenModel>(config.kserve_token_model, gateway));
  }

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const inf::ServerLiveRequest*,
                                       inf::ServerLiveResponse* response) override {
    response->set_live(true);
    return Done(context, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context,
                                        const inf::ServerReadyRequest*,
                                        inf::ServerReadyResponse* response) override {
    response->set_ready(Ready());
    return Done(context, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const inf::ModelReadyRequest* request,
                                       inf::ModelReadyResponse* response) override {
    StatusOr<const KServeModel*> model = models_.Find(request->name(), request->version());
    if (!model.ok()) return Done(context, ToGrpcStatus(model.status()));
    response->set_ready(Ready() && (*model)->Available().ok());
    return Done(context, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const inf::ServerMetadataRequest*,
                                           inf::ServerMetadataResponse* response) override {
    response->set_name("moeserve");
    response->set_version(kVersion);
    // No "statistics": perf_analyzer would then call ModelStatistics, which we do not serve.
    response->add_extensions("model_configuration");
    response->add_extensions("parameters");
    return Done(context, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const inf::ModelMetadataRequest* request,
                                          inf::ModelMetadataResponse* response) override {
    StatusOr<const KServeModel*> model = models_.Find(request->name(), request->version());
    if (!model.ok()) return Done(context, ToGrpcStatus(model.status()));
    (*model)->FillMetadata(response);
    return Done(context, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* context,
                                        const inf::ModelConfigRequest* request,
                                        inf::ModelConfigResponse* response) override {
    StatusOr<const KServeModel*> model = models_.Find(request->name(), request->version());
    if (!model.ok()) return Done(context, ToGrpcStatus(model.status()));
    (*model)->FillConfig(response->mutable_config());
    return Done(context, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const inf::ModelInferRequest* request,
                                       inf::ModelInferResponse* response) override {
    return new KServeInferCall(context, request, response, &models_, gateway_, retry_after_ms_);
  }

  grpc::ServerBidiReactor<inf::ModelInferRequest, inf::ModelStreamInferResponse>* ModelStreamInfer(
      grpc::CallbackServerContext* context) override {
    return new KServeStreamCall(context, &models_, gateway_);
  }

 private:
  bool Ready() const { return gateway_->ready() && !gateway_->draining(); }

  static grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* context,
                                        const grpc::Status& status) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(status);
    return reactor;
  }

  RequestGateway* gateway_;
  int64_t retry_after_ms_;
  KServeModelSet models_;
};

}  // namespace

std::unique_ptr<grpc::Service> CreateKServeService(RequestGateway* gateway,
                                                   const ServerConfig& config) {
  return std::make_unique<KServeService>(gateway, config);
}

}  // namespace moe::serving
