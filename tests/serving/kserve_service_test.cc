// End-to-end tests of the KServe v2 / Triton surface (inference.GRPCInferenceService) on a real
// server (127.0.0.1, free port), with requests shaped the way tritonclient, perf_analyzer,
// genai-perf and TensorRT-LLM's clients shape them: health / metadata / config RPCs, unary
// ModelInfer, decoupled ModelStreamInfer with several requests on one stream (ids echoed,
// triton_final_response on every response, empty final responses), per-request errors that keep
// the stream open, triton_grpc_error, TRT-LLM `stop`, cancellation, bad tensors, raw vs typed
// contents; tokens are checked against the native moeserve.v1 Generate of the same prompt.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <thread>

#include "inference/grpc_service.grpc.pb.h"
#include "moeserve/v1/moeserve.grpc.pb.h"
#include "serving/kserve_tensor.h"
#include "tests/serving/server_fixture.h"

namespace moe::serving {
namespace {

namespace inf = ::inference;
using testing::TestServer;
using testing::TestServerOptions;

// --- request building ---------------------------------------------------------------------------

// Builds a ModelInferRequest in raw form (tritonclient's default) or with typed contents.
class RequestBuilder {
 public:
  RequestBuilder(std::string model, std::string id, bool raw = true) : raw_(raw) {
    r_.set_model_name(std::move(model));
    r_.set_id(std::move(id));
  }
  RequestBuilder& Int32(const std::string& name, std::vector<int64_t> shape,
                        std::vector<int32_t> values) {
    auto* in = Add(name, "INT32", shape);
    if (raw_) {
      r_.add_raw_input_contents(
          std::string(reinterpret_cast<const char*>(values.data()), values.size() * 4));
    } else {
      for (int32_t v : values) in->mutable_contents()->add_int_contents(v);
    }
    return *this;
  }
  RequestBuilder& Int32(const std::string& name, int32_t value) {
    return Int32(name, {1, 1}, {value});
  }
  RequestBuilder& Bool(const std::string& name, bool value) {
    auto* in = Add(name, "BOOL", {1, 1});
    if (raw_) {
      r_.add_raw_input_contents(std::string(1, value ? '\1' : '\0'));
    } else {
      in->mutable_contents()->add_bool_contents(value);
    }
    return *this;
  }
  RequestBuilder& Fp32(const std::string& name, float value) {
    auto* in = Add(name, "FP32", {1, 1});
    if (raw_) {
      r_.add_raw_input_contents(std::string(reinterpret_cast<const char*>(&value), 4));
    } else {
      in->mutable_contents()->add_fp32_contents(value);
    }
    return *this;
  }
  RequestBuilder& Bytes(const std::string& name, std::vector<int64_t> shape,
                        std::vector<std::string> values) {
    auto* in = Add(name, "BYTES", shape);
    if (raw_) {
      std::string raw;
      for (const std::string& v : values) AppendBytesElement(v, &raw);
      r_.add_raw_input_contents(raw);
    } else {
      for (const std::string& v : values) in->mutable_contents()->add_bytes_contents(v);
    }
    return *this;
  }
  RequestBuilder& Param(const std::string& name, bool value) {
    (*r_.mutable_parameters())[name].set_bool_param(value);
    return *this;
  }
  inf::ModelInferRequest Build() const { return r_; }
  inf::ModelInferRequest* mutable_request() { return &r_; }

 private:
  inf::ModelInferRequest::InferInputTensor* Add(const std::string& name, const char* type,
                                                const std::vector<int64_t>& shape) {
    auto* in = r_.add_inputs();
    in->set_name(name);
    in->set_datatype(type);
    for (int64_t d : shape) in->add_shape(d);
    return in;
  }

  bool raw_;
  inf::ModelInferRequest r_;
};

// A TRT-LLM style token request: input_ids [1, n], input_lengths, request_output_len.
RequestBuilder TokenRequest(const std::string& id, const std::vector<int32_t>& prompt,
                            int32_t output_len, bool streaming, bool raw = true) {
  RequestBuilder b("tensorrt_llm", id, raw);
  b.Int32("input_ids", {1, static_cast<int64_t>(prompt.size())}, prompt)
      .Int32("input_lengths", static_cast<int32_t>(prompt.size()))
      .Int32("request_output_len", output_len)
      .Bool("streaming", streaming);
  return b;
}

// --- response reading ---------------------------------------------------------------------------

std::vector<int32_t> Int32Output(const inf::ModelInferResponse& r, const std::string& name) {
  const std::string* raw = FindRawOutput(r, name);
  if (raw == nullptr) return {};
  std::vector<int32_t> out(raw->size() / 4);
  if (!out.empty()) std::memcpy(out.data(), raw->data(), raw->size());
  return out;
}

std::vector<std::string> BytesOutput(const inf::ModelInferResponse& r, const std::string& name) {
  const std::string* raw = FindRawOutput(r, name);
  const auto* out = FindOutput(r, name);
  if (raw == nullptr || out == nullptr) return {};
  int64_t n = 1;
  for (int64_t d : out->shape()) n *= d;
  auto parsed = DeserializeBytes(*raw, n, name);
  EXPECT_TRUE(parsed.ok()) << parsed.status().message();
  return parsed.ok() ? *parsed : std::vector<std::string>{};
}

// triton_final_response, or -1 when absent.
int FinalFlag(const inf::ModelInferResponse& r) {
  auto it = r.parameters().find("triton_final_response");
  if (it == r.parameters().end()) return -1;
  return it->second.bool_param() ? 1 : 0;
}

struct StreamResult {
  grpc::Status status;
  std::vector<inf::ModelStreamInferResponse> responses;
  std::map<std::string, std::vector<inf::ModelStreamInferResponse>> by_id;
};

// Writes every request on one ModelStreamInfer call, half-closes, reads until the server ends.
StreamResult RunStream(inf::GRPCInferenceService::Stub& stub,
                       const std::vector<inf::ModelInferRequest>& requests,
                       const std::multimap<std::string, std::string>& metadata = {}) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  for (const auto& [k, v] : metadata) context.AddMetadata(k, v);
  auto stream = stub.ModelStreamInfer(&context);
  for (const auto& r : requests) EXPECT_TRUE(stream->Write(r));
  stream->WritesDone();
  StreamResult result;
  inf::ModelStreamInferResponse response;
  while (stream->Read(&response)) {
    result.responses.push_back(response);
    result.by_id[response.infer_response().id()].push_back(response);
  }
  result.status = stream->Finish();
  return result;
}

// Native moeserve.v1 Generate (greedy), the reference the KServe tokens must equal.
std::vector<int32_t> NativeGreedy(const std::shared_ptr<grpc::Channel>& channel,
                                  const std::vector<int32_t>& prompt, int max_tokens) {
  auto stub = moeserve::v1::MoeServe::NewStub(channel);
  moeserve::v1::GenerateRequest request;
  for (int32_t t : prompt) request.add_input_ids(static_cast<uint32_t>(t));
  request.mutable_sampling()->set_temperature(0.f);
  request.mutable_sampling()->set_max_tokens(static_cast<uint32_t>(max_tokens));
  request.set_stream(false);
  grpc::ClientContext context;
  auto reader = stub->Generate(&context, request);
  moeserve::v1::GenerateResponse message;
  std::vector<int32_t> out;
  while (reader->Read(&message)) {
    for (uint32_t t : message.complete().output_ids()) out.push_back(static_cast<int32_t>(t));
  }
  EXPECT_TRUE(reader->Finish().ok());
  return out;
}

// Tokens of one streamed request: output_ids of every response, in order.
std::vector<int32_t> StreamedTokens(const std::vector<inf::ModelStreamInferResponse>& responses) {
  std::vector<int32_t> out;
  for (const auto& r : responses) {
    for (int32_t t : Int32Output(r.infer_response(), "output_ids")) out.push_back(t);
  }
  return out;
}

// Every response but the last is intermediate; the last is final; all carry the flag.
void ExpectFinalOnlyLast(const std::vector<inf::ModelStreamInferResponse>& responses) {
  ASSERT_FALSE(responses.empty());
  for (size_t i = 0; i < responses.size(); ++i) {
    EXPECT_EQ(FinalFlag(responses[i].infer_response()), i + 1 == responses.size() ? 1 : 0)
        << "response " << i << " of " << responses.size();
  }
}

class KServeServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new TestServer(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    channel_ = server_->NewChannel();
    stub_ = inf::GRPCInferenceService::NewStub(channel_);
  }

  grpc::Status Infer(const inf::ModelInferRequest& request, inf::ModelInferResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return stub_->ModelInfer(&context, request, response);
  }
  void WaitIdle() {
    for (int i = 0; i < 500 && server_->gateway().active_requests() > 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  static TestServer* server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<inf::GRPCInferenceService::Stub> stub_;
};
TestServer* KServeServiceTest::server_ = nullptr;

TEST_F(KServeServiceTest, HealthMetadataAndConfig) {
  {
    grpc::ClientContext c;
    inf::ServerLiveResponse r;
    ASSERT_TRUE(stub_->ServerLive(&c, {}, &r).ok());
    EXPECT_TRUE(r.live());
  }
  {
    grpc::ClientContext c;
    inf::ServerReadyResponse r;
    ASSERT_TRUE(stub_->ServerReady(&c, {}, &r).ok());
    EXPECT_TRUE(r.ready());
  }
  {
    grpc::ClientContext c;
    inf::ModelReadyRequest q;
    q.set_name("tensorrt_llm");
    inf::ModelReadyResponse r;
    ASSERT_TRUE(stub_->ModelReady(&c, q, &r).ok());
    EXPECT_TRUE(r.ready());
  }
  {
    // The tiny preset has no tokenizer: the text model exists but is not ready.
    grpc::ClientContext c;
    inf::ModelReadyRequest q;
    q.set_name("ensemble");
    inf::ModelReadyResponse r;
    ASSERT_TRUE(stub_->ModelReady(&c, q, &r).ok());
    EXPECT_FALSE(r.ready());
  }
  {
    grpc::ClientContext c;
    inf::ModelReadyRequest q;
    q.set_name("no_such_model");
    inf::ModelReadyResponse r;
    EXPECT_EQ(stub_->ModelReady(&c, q, &r).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext c;
    inf::ServerMetadataResponse r;
    ASSERT_TRUE(stub_->ServerMetadata(&c, {}, &r).ok());
    EXPECT_EQ(r.name(), "moeserve");
    EXPECT_FALSE(r.version().empty());
    for (const std::string& e : r.extensions()) EXPECT_NE(e, "statistics");
  }
  {
    grpc::ClientContext c;
    inf::ModelMetadataRequest q;
    q.set_name("tensorrt_llm");
    inf::ModelMetadataResponse r;
    ASSERT_TRUE(stub_->ModelMetadata(&c, q, &r).ok());
    EXPECT_EQ(r.name(), "tensorrt_llm");
    ASSERT_EQ(r.versions_size(), 1);
    EXPECT_NE(r.platform(), "ensemble");
    bool found = false;
    for (const auto& in : r.inputs()) {
      if (in.name() != "input_ids") continue;
      found = true;
      EXPECT_EQ(in.datatype(), "INT32");
      EXPECT_EQ(std::vector<int64_t>(in.shape().begin(), in.shape().end()),
                (std::vector<int64_t>{-1, -1}))
          << "metadata shapes include the batch dimension";
    }
    EXPECT_TRUE(found);
  }
  for (const char* name : {"tensorrt_llm", "ensemble"}) {
    grpc::ClientContext c;
    inf::ModelConfigRequest q;
    q.set_name(name);
    inf::ModelConfigResponse r;
    ASSERT_TRUE(stub_->ModelConfig(&c, q, &r).ok());
    const inf::ModelConfig& config = r.config();
    EXPECT_EQ(config.name(), name);
    EXPECT_GT(config.max_batch_size(), 0);
    EXPECT_TRUE(config.model_transaction_policy().decoupled());
    EXPECT_FALSE(config.has_ensemble_scheduling());
    std::map<std::string, const inf::ModelInput*> inputs;
    for (const auto& in : config.input()) inputs[in.name()] = &in;
    const std::string main = std::string(name) == "ensemble" ? "text_input" : "input_ids";
    ASSERT_TRUE(inputs.count(main));
    EXPECT_FALSE(inputs[main]->optional());
    EXPECT_EQ(inputs[main]->data_type(), main == "text_input" ? inf::TYPE_STRING : inf::TYPE_INT32);
    EXPECT_EQ(inputs[main]->dims_size(), 1) << "dims exclude the batch dimension";
    const std::string stream = main == "text_input" ? "stream" : "streaming";
    ASSERT_TRUE(inputs.count(stream));
    EXPECT_TRUE(inputs[stream]->optional());
  }
  {
    grpc::ClientContext c;
    inf::ModelConfigRequest q;
    q.set_name("nope");
    inf::ModelConfigResponse r;
    EXPECT_EQ(stub_->ModelConfig(&c, q, &r).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext c;
    inf::ModelMetadataRequest q;
    q.set_name("tensorrt_llm");
    q.set_version("7");
    inf::ModelMetadataResponse r;
    EXPECT_EQ(stub_->ModelMetadata(&c, q, &r).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext c;
    inf::ModelStatisticsResponse r;
    EXPECT_EQ(stub_->ModelStatistics(&c, {}, &r).error_code(), grpc::StatusCode::UNIMPLEMENTED);
  }
}

TEST_F(KServeServiceTest, UnaryInferEchoesPromptAndMatchesNativeGenerate) {
  const std::vector<int32_t> prompt = {5, 6, 7, 8};
  const std::vector<int32_t> native = NativeGreedy(channel_, prompt, 10);
  ASSERT_FALSE(native.empty());
  inf::ModelInferResponse response;
  grpc::Status status = Infer(TokenRequest("u-1", prompt, 10, false).Build(), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.id(), "u-1");
  EXPECT_EQ(response.model_name(), "tensorrt_llm");
  std::vector<int32_t> expected = prompt;
  expected.insert(expected.end(), native.begin(), native.end());
  EXPECT_EQ(Int32Output(response, "output_ids"), expected)
      << "exclude_input_in_output defaults to false: the prompt comes first";
  const auto* out = FindOutput(response, "output_ids");
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(std::vector<int64_t>(out->shape().begin(), out->shape().end()),
            (std::vector<int64_t>{1, 1, static_cast<int64_t>(expected.size())}));
  EXPECT_EQ(Int32Output(response, "sequence_length"),
            std::vector<int32_t>{static_cast<int32_t>(expected.size())});

  auto excluded = TokenRequest("u-2", prompt, 10, false);
  excluded.Bool("exclude_input_in_output", true).Bool("return_log_probs", true);
  response.Clear();
  status = Infer(excluded.Build(), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(Int32Output(response, "output_ids"), native);
  const std::string* lp = FindRawOutput(response, "output_log_probs");
  ASSERT_NE(lp, nullptr);
  EXPECT_EQ(lp->size(), native.size() * 4);
  EXPECT_NE(FindRawOutput(response, "cum_log_probs"), nullptr);

  // stream=true on the unary RPC: the model is decoupled.
  response.Clear();
  status = Infer(TokenRequest("u-3", prompt, 10, true).Build(), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("streaming"), std::string::npos);
}

TEST_F(KServeServiceTest, RawAndTypedContentsGiveTheSameOutput) {
  const std::vector<int32_t> prompt = {9, 10, 11};
  inf::ModelInferResponse raw, typed;
  ASSERT_TRUE(Infer(TokenRequest("raw", prompt, 6, false, /*raw=*/true).Build(), &raw).ok());
  auto t = TokenRequest("typed", prompt, 6, false, /*raw=*/false);
  t.Fp32("temperature", 0.f);
  grpc::Status status = Infer(t.Build(), &typed);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(Int32Output(raw, "output_ids"), Int32Output(typed, "output_ids"));
  EXPECT_EQ(typed.id(), "typed");
  // Without the batch dimension too.
  RequestBuilder flat("tensorrt_llm", "flat");
  flat.Int32("input_ids", {3}, prompt).Int32("request_output_len", {1}, {6});
  inf::ModelInferResponse flat_response;
  status = Infer(flat.Build(), &flat_response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(Int32Output(flat_response, "output_ids"), Int32Output(raw, "output_ids"));
}

TEST_F(KServeServiceTest, StreamCarriesSeveralRequestsWithIdsAndFinalFlags) {
  const std::vector<std::vector<int32_t>> prompts = {{4, 5, 6}, {7, 8}, {20, 21, 22, 23}};
  std::vector<inf::ModelInferRequest> requests;
  for (size_t i = 0; i < prompts.size(); ++i) {
    requests.push_back(TokenRequest("s-" + std::to_string(i), prompts[i], 12, true)
                           .Bool("exclude_input_in_output", true)
                           .Build());
  }
  // A non-streaming request on the same stream: exactly one response, final, whole output.
  requests.push_back(
      TokenRequest("whole", prompts[0], 12, false).Bool("exclude_input_in_output", true).Build());
  const StreamResult result = RunStream(*stub_, requests);
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  ASSERT_EQ(result.by_id.size(), 4u);
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto& responses = result.by_id.at("s-" + std::to_string(i));
    for (const auto& r : responses) {
      EXPECT_TRUE(r.error_message().empty()) << r.error_message();
      EXPECT_EQ(r.infer_response().model_name(), "tensorrt_llm");
    }
    ExpectFinalOnlyLast(responses);
    EXPECT_GE(responses.size(), 2u) << "tokens stream in several responses";
    EXPECT_EQ(StreamedTokens(responses), NativeGreedy(channel_, prompts[i], 12)) << "request " << i;
  }
  const auto& whole = result.by_id.at("whole");
  ASSERT_EQ(whole.size(), 1u);
  EXPECT_EQ(FinalFlag(whole[0].infer_response()), 1);
  EXPECT_EQ(StreamedTokens(whole), NativeGreedy(channel_, prompts[0], 12));
}

TEST_F(KServeServiceTest, EmptyFinalResponseWhenNothingNewRemains) {
  // A two-id stop sequence taken from the free run: the tokens after it are dropped, so the
  // request ends with nothing new to send.
  const std::vector<int32_t> prompt = {12, 13, 14};
  const std::vector<int32_t> free_run = NativeGreedy(channel_, prompt, 100);
  ASSERT_GE(free_run.size(), 8u) << "needs a run that does not hit EOS at once";
  const int32_t a = free_run[3], b = free_run[4];
  size_t first = 0;
  while (!(free_run[first] == a && free_run[first + 1] == b)) ++first;
  const std::vector<int32_t> expected(free_run.begin(), free_run.begin() + first + 2);
  for (bool opt_in : {true, false}) {
    auto request = TokenRequest(opt_in ? "empty-final" : "flag-on-data", prompt, 100, true);
    request.Bool("exclude_input_in_output", true)
        .Int32("stop_words_list", {1, 2, 2}, {a, b, 2, -1});
    if (opt_in) request.Param("triton_enable_empty_final_response", true);
    const StreamResult result = RunStream(*stub_, {request.Build()});
    ASSERT_TRUE(result.status.ok());
    const auto& responses = result.responses;
    ExpectFinalOnlyLast(responses);
    EXPECT_EQ(StreamedTokens(responses), expected);
    const inf::ModelInferResponse& last = responses.back().infer_response();
    if (opt_in) {
      EXPECT_EQ(last.outputs_size(), 0) << "the null response of Triton's empty-final rule";
      EXPECT_EQ(last.raw_output_contents_size(), 0);
    } else {
      EXPECT_GT(last.outputs_size(), 0);
      EXPECT_TRUE(Int32Output(last, "output_ids").empty()) << "zero-length output, final flag";
    }
  }
}

TEST_F(KServeServiceTest, PerRequestErrorsKeepTheStreamOpen) {
  std::vector<inf::ModelInferRequest> requests;
  requests.push_back(TokenRequest("bad-tensor", {4, 5}, 4, true).Int32("no_such_input", 1).Build());
  auto unknown_model = TokenRequest("bad-model", {4, 5}, 4, true);
  unknown_model.mutable_request()->set_model_name("gpt-17");
  requests.push_back(unknown_model.Build());
  requests.push_back(
      RequestBuilder("ensemble", "no-tokenizer").Bytes("text_input", {1, 1}, {"hello"}).Build());
  requests.push_back(TokenRequest("bad-id", {4, 100000}, 4, true).Build());
  requests.push_back(TokenRequest("good", {4, 5}, 6, true).Build());
  const StreamResult result = RunStream(*stub_, requests);
  ASSERT_TRUE(result.status.ok()) << "errors do not end the stream";
  auto error_of = [&](const std::string& id) {
    const auto& rs = result.by_id.at(id);
    EXPECT_EQ(rs.size(), 1u);
    EXPECT_EQ(FinalFlag(rs[0].infer_response()), 1);
    return rs[0].error_message();
  };
  EXPECT_NE(error_of("bad-tensor").find("no_such_input"), std::string::npos);
  EXPECT_NE(error_of("bad-model").find("gpt-17"), std::string::npos);
  EXPECT_NE(error_of("no-tokenizer").find("tokenizer"), std::string::npos);
  EXPECT_NE(error_of("bad-id").find("input_ids"), std::string::npos);
  const auto& good = result.by_id.at("good");
  ExpectFinalOnlyLast(good);
  for (const auto& r : good) EXPECT_TRUE(r.error_message().empty());
  EXPECT_EQ(StreamedTokens(good).size(), NativeGreedy(channel_, {4, 5}, 6).size());
}

TEST_F(KServeServiceTest, TritonGrpcErrorHeaderEndsTheCallWithTheStatus) {
  const StreamResult result =
      RunStream(*stub_, {TokenRequest("x", {4, 5}, 4, true).Int32("bogus", 1).Build()},
                {{"triton_grpc_error", "true"}});
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(result.status.error_message().find("bogus"), std::string::npos);
}

TEST_F(KServeServiceTest, StopInputEndsThatRequestEarly) {
  grpc::ClientContext context;
  auto stream = stub_->ModelStreamInfer(&context);
  ASSERT_TRUE(stream->Write(TokenRequest("long", {4, 5, 6}, 200, true).Build()));
  ASSERT_TRUE(stream->Write(TokenRequest("other", {7, 8}, 5, true).Build()));
  inf::ModelStreamInferResponse response;
  // Wait for the first tokens of "long", then stop it the TRT-LLM way.
  bool stopped = false;
  std::map<std::string, std::vector<inf::ModelStreamInferResponse>> by_id;
  int finals = 0;
  while (finals < 2 && stream->Read(&response)) {
    by_id[response.infer_response().id()].push_back(response);
    if (FinalFlag(response.infer_response()) == 1) ++finals;
    if (!stopped && response.infer_response().id() == "long") {
      RequestBuilder stop("tensorrt_llm", "long");
      stop.Int32("input_ids", {1, 1}, {4}).Int32("request_output_len", 1).Bool("stop", true);
      ASSERT_TRUE(stream->Write(stop.Build()));
      stopped = true;
    }
  }
  stream->WritesDone();
  while (stream->Read(&response)) by_id[response.infer_response().id()].push_back(response);
  EXPECT_TRUE(stream->Finish().ok());
  ASSERT_TRUE(stopped);
  ExpectFinalOnlyLast(by_id["long"]);
  EXPECT_LT(StreamedTokens(by_id["long"]).size(), 200u);
  ExpectFinalOnlyLast(by_id["other"]);
  EXPECT_EQ(by_id.size(), 2u) << "the stop request itself sends nothing (no empty-final opt-in)";
}

TEST_F(KServeServiceTest, CancellingTheStreamAbortsEveryRequest) {
  WaitIdle();
  const int64_t generated_before = server_->loop().Stats().total_generated_tokens;
  {
    grpc::ClientContext context;
    auto stream = stub_->ModelStreamInfer(&context);
    ASSERT_TRUE(stream->Write(TokenRequest("c-1", {4, 5, 6}, 200, true).Build()));
    ASSERT_TRUE(stream->Write(TokenRequest("c-2", {7, 8, 9}, 200, true).Build()));
    inf::ModelStreamInferResponse response;
    ASSERT_TRUE(stream->Read(&response));
    context.TryCancel();
    while (stream->Read(&response)) {
    }
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  WaitIdle();
  EXPECT_EQ(server_->gateway().active_requests(), 0);
  const int64_t generated = server_->loop().Stats().total_generated_tokens - generated_before;
  EXPECT_LT(generated, 400) << "both requests were aborted before their 200 tokens";
}

TEST_F(KServeServiceTest, BadTensorsAreInvalidArgumentNamingTheTensor) {
  struct Case {
    const char* what;
    inf::ModelInferRequest request;
    const char* needle;
  };
  std::vector<Case> cases;
  cases.push_back(
      {"unknown input", TokenRequest("e", {4}, 4, false).Int32("foo", 1).Build(), "foo"});
  {
    RequestBuilder b("tensorrt_llm", "e");
    b.Int32("input_ids", {1, 2}, {4, 5}).Int32("request_output_len", 4);
    auto r = b.Build();
    r.mutable_inputs(0)->set_datatype("INT64");
    r.set_raw_input_contents(0, std::string(16, '\0'));
    cases.push_back({"wrong dtype", r, "input_ids"});
  }
  {
    RequestBuilder b("tensorrt_llm", "e");
    b.Int32("input_ids", {1, 2}, {4, 5}).Int32("request_output_len", {1, 2}, {4, 4});
    cases.push_back({"wrong shape", b.Build(), "request_output_len"});
  }
  {
    RequestBuilder b("tensorrt_llm", "e");
    b.Int32("input_ids", {2, 2}, {4, 5, 6, 7}).Int32("request_output_len", {2, 1}, {4, 4});
    cases.push_back({"batch of two", b.Build(), "batch size 2"});
  }
  {
    auto r = TokenRequest("e", {4, 5}, 4, false).Build();
    r.set_raw_input_contents(0, std::string(7, '\0'));
    cases.push_back({"raw size", r, "input_ids"});
  }
  {
    RequestBuilder b("tensorrt_llm", "e", /*raw=*/false);
    b.Int32("input_ids", {1, 3}, {4, 5}).Int32("request_output_len", 4);
    cases.push_back({"typed count", b.Build(), "input_ids"});
  }
  {
    RequestBuilder b("tensorrt_llm", "e");
    b.Int32("input_ids", {1, 2}, {4, 5});
    cases.push_back({"missing required", b.Build(), "request_output_len"});
  }
  {
    auto r = TokenRequest("e", {4, 5}, 4, false).Build();
    r.mutable_inputs(1)->mutable_contents()->add_int_contents(1);
    cases.push_back({"raw mixed with typed", r, "input_lengths"});
  }
  cases.push_back({"input_lengths too long",
                   TokenRequest("e", {4, 5}, 4, false).Int32("input_lengths", 9).Build(),
                   "input_lengths"});
  cases.push_back({"beam search",
                   TokenRequest("e", {4, 5}, 4, false).Int32("beam_width", 2).Build(),
                   "beam_width"});
  cases.push_back(
      {"bad words",
       TokenRequest("e", {4, 5}, 4, false).Int32("bad_words_list", {1, 2, 1}, {9, 1}).Build(),
       "bad_words_list"});
  cases.push_back({"temperature",
                   TokenRequest("e", {4, 5}, 4, false).Fp32("temperature", -1).Build(),
                   "temperature"});
  cases.push_back({"token id", TokenRequest("e", {4, 100000}, 4, false).Build(), "input_ids"});
  cases.push_back(
      {"over the context", TokenRequest("e", {4, 5}, 100000, false).Build(), "request_output_len"});
  for (const Case& c : cases) {
    inf::ModelInferResponse response;
    const grpc::Status status = Infer(c.request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.what << ": " << status.error_message();
    EXPECT_NE(status.error_message().find(c.needle), std::string::npos)
        << c.what << ": " << status.error_message();
  }
  // Unknown model: NOT_FOUND; and the server still serves.
  auto unknown = TokenRequest("e", {4, 5}, 4, false);
  unknown.mutable_request()->set_model_name("missing");
  inf::ModelInferResponse response;
  EXPECT_EQ(Infer(unknown.Build(), &response).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(Infer(TokenRequest("ok", {4, 5}, 3, false).Build(), &response).ok());
}

// --- the text model (demo preset: Qwen3's tokenizer) --------------------------------------------

class KServeTextModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    TestServerOptions options;
    options.preset = "demo";
    options.max_context = 128;
    server_ = new TestServer(options);
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    if (server_->tokenizer() == nullptr) GTEST_SKIP() << "this build has no embedded tokenizer";
    channel_ = server_->NewChannel();
    stub_ = inf::GRPCInferenceService::NewStub(channel_);
  }

  // genai-perf's request: text_input, max_tokens, exclude_input_in_output, stream.
  static RequestBuilder TextRequest(const std::string& id, const std::string& text, int max_tokens,
                                    bool stream, bool raw = true) {
    RequestBuilder b("ensemble", id, raw);
    b.Bytes("text_input", {1, 1}, {text}).Int32("max_tokens", max_tokens).Bool("stream", stream);
    return b;
  }

  std::string NativeText(const std::string& text, int max_tokens) {
    auto stub = moeserve::v1::MoeServe::NewStub(channel_);
    moeserve::v1::GenerateRequest request;
    request.set_text(text);
    request.mutable_sampling()->set_temperature(0.f);
    request.mutable_sampling()->set_max_tokens(static_cast<uint32_t>(max_tokens));
    grpc::ClientContext context;
    auto reader = stub->Generate(&context, request);
    moeserve::v1::GenerateResponse message;
    std::string out;
    while (reader->Read(&message)) out += message.complete().text();
    EXPECT_TRUE(reader->Finish().ok());
    return out;
  }

  static TestServer* server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<inf::GRPCInferenceService::Stub> stub_;
};
TestServer* KServeTextModelTest::server_ = nullptr;

TEST_F(KServeTextModelTest, UnaryAndStreamedTextMatchNativeGenerate) {
  const std::string prompt = "The quick brown fox";
  const std::string native = NativeText(prompt, 16);
  ASSERT_FALSE(native.empty());
  {
    grpc::ClientContext c;
    inf::ModelReadyRequest q;
    q.set_name("ensemble");
    inf::ModelReadyResponse r;
    ASSERT_TRUE(stub_->ModelReady(&c, q, &r).ok());
    EXPECT_TRUE(r.ready());
  }
  // Unary, TRT-LLM default: the prompt is echoed.
  inf::ModelInferResponse unary;
  grpc::ClientContext c1;
  grpc::Status status =
      stub_->ModelInfer(&c1, TextRequest("t1", prompt, 16, false).Build(), &unary);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(BytesOutput(unary, "text_output"), std::vector<std::string>{prompt + native});
  // Streaming with exclude_input_in_output (genai-perf): deltas concatenate to the native text.
  auto request = TextRequest("t2", prompt, 16, true, /*raw=*/false);
  request.Bool("exclude_input_in_output", true)
      .Bool("return_num_output_tokens", true)
      .Bool("return_finish_reason", true);
  const StreamResult result = RunStream(*stub_, {request.Build()});
  ASSERT_TRUE(result.status.ok());
  ExpectFinalOnlyLast(result.responses);
  std::string text;
  uint32_t tokens = 0;
  for (const auto& r : result.responses) {
    ASSERT_TRUE(r.error_message().empty()) << r.error_message();
    const auto pieces = BytesOutput(r.infer_response(), "text_output");
    ASSERT_EQ(pieces.size(), 1u);
    text += pieces[0];
    const std::string* n = FindRawOutput(r.infer_response(), "num_output_tokens");
    ASSERT_NE(n, nullptr);
    uint32_t v = 0;
    std::memcpy(&v, n->data(), 4);
    tokens += v;
  }
  EXPECT_EQ(text, native);
  EXPECT_LE(tokens, 16u);
  const auto reason = BytesOutput(result.responses.back().infer_response(), "finish_reason");
  ASSERT_EQ(reason.size(), 1u);
  EXPECT_TRUE(reason[0] == "length" || reason[0] == "stop") << reason[0];
}

TEST_F(KServeTextModelTest, StopWordsAndSamplingParametersJson) {
  const std::string prompt = "Once upon a time";
  const std::string native = NativeText(prompt, 24);
  ASSERT_GT(native.size(), 12u);
  const std::string stop = native.substr(native.size() / 2, 3);
  auto request = TextRequest("stop", prompt, 24, false);
  request.Bool("exclude_input_in_output", true).Bytes("stop_words", {1, 1}, {stop});
  inf::ModelInferResponse response;
  grpc::ClientContext c1;
  ASSERT_TRUE(stub_->ModelInfer(&c1, request.Build(), &response).ok());
  EXPECT_EQ(BytesOutput(response, "text_output"),
            std::vector<std::string>{native.substr(0, native.find(stop))});
  // The vLLM backend's form: text_input + sampling_parameters JSON (numbers as strings allowed).
  RequestBuilder vllm("ensemble", "vllm");
  vllm.Bytes("text_input", {1}, {prompt})
      .Bytes("sampling_parameters", {1}, {R"({"temperature": "0", "max_tokens": 24})"})
      .Bool("exclude_input_in_output", true);
  response.Clear();
  grpc::ClientContext c2;
  grpc::Status status = stub_->ModelInfer(&c2, vllm.Build(), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(BytesOutput(response, "text_output"), std::vector<std::string>{native});
  // A bad key and malformed JSON are INVALID_ARGUMENT naming sampling_parameters.
  for (const char* json : {R"({"temprature": 0})", "{not json"}) {
    RequestBuilder bad("ensemble", "bad");
    bad.Bytes("text_input", {1}, {prompt}).Bytes("sampling_parameters", {1}, {json});
    grpc::ClientContext c;
    status = stub_->ModelInfer(&c, bad.Build(), &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(status.error_message().find("sampling_parameters"), std::string::npos);
  }
}

TEST_F(KServeTextModelTest, MalformedBytesAreInvalidArgument) {
  auto request = TextRequest("trunc", "hello", 4, false).Build();
  // text_input is input 0: a length prefix cut short.
  request.set_raw_input_contents(0, std::string("\x05\x00", 2));
  inf::ModelInferResponse response;
  grpc::ClientContext c;
  const grpc::Status status = stub_->ModelInfer(&c, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("text_input"), std::string::npos);
  EXPECT_NE(status.error_message().find("truncated"), std::string::npos);
  auto empty = TextRequest("empty", "", 4, false).Build();
  grpc::ClientContext c2;
  EXPECT_EQ(stub_->ModelInfer(&c2, empty, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace moe::serving
