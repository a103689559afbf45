// End-to-end tests of the native moeserve.v1.MoeServe surface on a real server (127.0.0.1, free
// port): streaming and unary Generate, coalesced chunks, Abort, client cancel, deadlines,
// overload, drain, health, info RPCs, and every invalid input (the server keeps serving others).
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>

#include <thread>

#include "moeserve/v1/moeserve.grpc.pb.h"
#include "tests/serving/server_fixture.h"

namespace moe::serving {
namespace {

namespace pb = moeserve::v1;
using testing::TestServer;
using testing::TestServerOptions;

struct GenerateResult {
  grpc::Status status;
  std::vector<pb::GenerateResponse> messages;
  std::vector<uint32_t> tokens;  // chunks + complete, in order
  std::string text;
  pb::Complete complete;
  std::multimap<std::string, std::string> trailers;
};

GenerateResult Generate(pb::MoeServe::Stub& stub, const pb::GenerateRequest& request,
                        int deadline_ms = 60000) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(deadline_ms));
  GenerateResult result;
  auto reader = stub.Generate(&context, request);
  pb::GenerateResponse message;
  while (reader->Read(&message)) {
    result.messages.push_back(message);
    if (message.has_chunk()) {
      for (uint32_t t : message.chunk().token_ids()) result.tokens.push_back(t);
      result.text += message.chunk().text();
    } else {
      for (uint32_t t : message.complete().output_ids()) result.tokens.push_back(t);
      result.text += message.complete().text();
      result.complete = message.complete();
    }
  }
  result.status = reader->Finish();
  for (const auto& [key, value] : context.GetServerTrailingMetadata()) {
    result.trailers.emplace(std::string(key.data(), key.size()),
                            std::string(value.data(), value.size()));
  }
  return result;
}

pb::GenerateRequest Greedy(std::vector<uint32_t> prompt, uint32_t max_tokens, bool stream) {
  pb::GenerateRequest r;
  for (uint32_t t : prompt) r.add_input_ids(t);
  r.mutable_sampling()->set_temperature(0.f);
  r.mutable_sampling()->set_max_tokens(max_tokens);
  r.mutable_sampling()->set_ignore_eos(true);
  r.set_stream(stream);
  return r;
}

// grpc.health.v1.Health/Check through the generic stub (the health proto is not compiled here):
// request {string service = 1}, response {ServingStatus status = 1}: 1 = SERVING, 2 = NOT_SERVING.
std::pair<grpc::StatusCode, int> HealthCheck(const std::shared_ptr<grpc::Channel>& channel,
                                             const std::string& service) {
  grpc::GenericStub stub(channel);
  std::string request;
  request.push_back(0x0a);
  request.push_back(static_cast<char>(service.size()));
  request += service;
  grpc::Slice slice(request);
  grpc::ByteBuffer in(&slice, 1), out;
  grpc::ClientContext context;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &in, &out,
                 [&](grpc::Status s) {
                   std::lock_guard<std::mutex> lock(mu);
                   status = s;
                   done = true;
                   cv.notify_all();
                 });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  if (!status.ok()) return {status.error_code(), -1};
  std::vector<grpc::Slice> slices;
  (void)out.Dump(&slices);
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  const int value = bytes.size() >= 2 && bytes[0] == 0x08 ? bytes[1] : 0;  // absent = UNKNOWN
  return {grpc::StatusCode::OK, value};
}

class MoeServeServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new TestServer(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { stub_ = pb::MoeServe::NewStub(server_->NewChannel()); }

  static TestServer* server_;
  std::unique_ptr<pb::MoeServe::Stub> stub_;
};
TestServer* MoeServeServiceTest::server_ = nullptr;

TEST_F(MoeServeServiceTest, StreamingAndUnaryGiveTheSameTokens) {
  const auto streamed = Generate(*stub_, Greedy({5, 6, 7, 8}, 12, true));
  ASSERT_TRUE(streamed.status.ok()) << streamed.status.error_message();
  const auto unary = Generate(*stub_, Greedy({5, 6, 7, 8}, 12, false));
  ASSERT_TRUE(unary.status.ok()) << unary.status.error_message();
  EXPECT_EQ(streamed.tokens.size(), 12u);
  EXPECT_EQ(streamed.tokens, unary.tokens);
  ASSERT_EQ(unary.messages.size(), 1u) << "stream=false gives exactly one message";
  EXPECT_TRUE(unary.messages[0].has_complete());
  EXPECT_EQ(unary.complete.finish_reason(), pb::LENGTH);
  EXPECT_EQ(unary.complete.prompt_tokens(), 4u);
  EXPECT_EQ(unary.complete.completion_tokens(), 12u);
  // Streaming: chunks then exactly one complete, last.
  ASSERT_GE(streamed.messages.size(), 2u);
  for (size_t i = 0; i + 1 < streamed.messages.size(); ++i) {
    EXPECT_TRUE(streamed.messages[i].has_chunk());
  }
  EXPECT_TRUE(streamed.messages.back().has_complete());
  uint32_t last_count = 0;
  for (const auto& m : streamed.messages) {
    if (!m.has_chunk()) continue;
    EXPECT_GT(m.chunk().completion_tokens(), last_count) << "cumulative counts grow";
    last_count = m.chunk().completion_tokens();
    EXPECT_EQ(m.chunk().prompt_tokens(), 4u);
  }
}

TEST_F(MoeServeServiceTest, RequestIdIsEchoedOrAssigned) {
  auto request = Greedy({9, 10}, 2, true);
  request.set_request_id("client-42");
  const auto named = Generate(*stub_, request);
  for (const auto& m : named.messages) EXPECT_EQ(m.request_id(), "client-42");
  const auto anonymous = Generate(*stub_, Greedy({9, 10}, 2, true));
  ASSERT_FALSE(anonymous.messages.empty());
  EXPECT_FALSE(anonymous.messages[0].request_id().empty());
}

TEST_F(MoeServeServiceTest, PerfMetricsAreOrdered) {
  auto request = Greedy({1, 2, 3}, 4, true);
  request.set_return_perf_metrics(true);
  const auto r = Generate(*stub_, request);
  ASSERT_TRUE(r.complete.has_perf());
  const pb::PerfMetrics& p = r.complete.perf();
  EXPECT_GT(p.arrival_time_ns(), 0);
  EXPECT_LE(p.arrival_time_ns(), p.first_scheduled_time_ns());
  EXPECT_LE(p.first_scheduled_time_ns(), p.first_token_time_ns());
  EXPECT_LE(p.first_token_time_ns(), p.last_token_time_ns());
  EXPECT_EQ(p.num_chunks_sent(), static_cast<uint32_t>(r.messages.size()));
}

TEST_F(MoeServeServiceTest, LogprobsAlignWithTokens) {
  auto request = Greedy({1, 2, 3}, 3, false);
  request.set_logprobs(3);
  const auto r = Generate(*stub_, request);
  ASSERT_TRUE(r.status.ok());
  ASSERT_EQ(r.complete.logprobs_size(), 3);
  for (int i = 0; i < 3; ++i) {
    const auto& lp = r.complete.logprobs(i);
    EXPECT_EQ(lp.token_id(), r.tokens[i]);
    ASSERT_EQ(lp.top_token_ids_size(), 3);
    EXPECT_EQ(lp.top_token_ids(0), lp.token_id()) << "greedy picks the most likely token";
    EXPECT_LE(lp.logprob(), 0.f);
    EXPECT_GE(lp.top_logprobs(0), lp.top_logprobs(1));
  }
}

TEST_F(MoeServeServiceTest, InvalidInputsNameTheFieldAndServingContinues) {
  struct Case {
    pb::GenerateRequest request;
    std::string field;
  };
  std::vector<Case> cases;
  cases.push_back({Greedy({}, 4, true), "input_ids"});
  cases.push_back({Greedy({1, 600}, 4, true), "input_ids[1]"});
  {
    auto r = Greedy({1, 2}, 4, true);
    r.mutable_sampling()->set_temperature(-0.5f);
    cases.push_back({r, "sampling.temperature"});
  }
  {
    auto r = Greedy({1, 2}, 4, true);
    r.mutable_sampling()->set_top_p(1.5f);
    cases.push_back({r, "sampling.top_p"});
  }
  cases.push_back({Greedy(std::vector<uint32_t>(200, 3), 100, true), "max_tokens"});
  {
    auto r = Greedy({1, 2}, 4, true);
    r.set_logprobs(50);
    cases.push_back({r, "logprobs"});
  }
  {
    auto r = Greedy({}, 4, true);
    r.set_text("hello");
    cases.push_back({r, "text"});
  }
  {
    auto r = Greedy({1, 2}, 4, true);
    r.mutable_sampling()->add_stop("x");
    cases.push_back({r, "sampling.stop"});
  }
  {
    auto r = Greedy({1, 2}, 4, true);
    r.mutable_sampling()->add_stop_token_ids(99999);
    cases.push_back({r, "sampling.stop_token_ids[0]"});
  }
  {
    auto r = Greedy({1, 2}, 4, true);
    r.mutable_sampling()->set_min_tokens(10);
    cases.push_back({r, "sampling.min_tokens"});
  }
  for (const Case& c : cases) {
    const auto r = Generate(*stub_, c.request);
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.field;
    EXPECT_NE(r.status.error_message().find(c.field), std::string::npos)
        << "'" << r.status.error_message() << "' should name " << c.field;
    EXPECT_TRUE(r.messages.empty());
  }
  const auto ok = Generate(*stub_, Greedy({1, 2}, 3, true));
  EXPECT_TRUE(ok.status.ok());
  EXPECT_EQ(ok.tokens.size(), 3u);
}

TEST_F(MoeServeServiceTest, AbortByRequestIdEndsTheStream) {
  auto request = Greedy({4, 5}, 200, true);
  request.set_request_id("to-abort");
  std::thread aborter([this] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    grpc::ClientContext context;
    pb::AbortRequest abort;
    abort.add_request_ids("to-abort");
    pb::AbortResponse response;
    EXPECT_TRUE(stub_->Abort(&context, abort, &response).ok());
    EXPECT_EQ(response.aborted(), 1u);
  });
  const auto r = Generate(*stub_, request);
  aborter.join();
  EXPECT_TRUE(r.status.ok());
  EXPECT_EQ(r.complete.finish_reason(), pb::ABORT);
  EXPECT_LT(r.tokens.size(), 200u);
}

TEST_F(MoeServeServiceTest, ClientCancelAndDeadlineAbortTheEngineRequest) {
  {
    grpc::ClientContext context;
    auto reader = stub_->Generate(&context, Greedy({4, 5, 6}, 200, true));
    pb::GenerateResponse message;
    ASSERT_TRUE(reader->Read(&message));
    context.TryCancel();
    while (reader->Read(&message)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  const auto late = Generate(*stub_, Greedy({4, 5, 6}, 200, true), /*deadline_ms=*/150);
  EXPECT_EQ(late.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  // Both engine requests are gone within a step or two: nothing left in flight, KV free.
  for (int i = 0; i < 200 && server_->gateway().active_requests() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(server_->gateway().active_requests(), 0);
  grpc::ClientContext context;
  pb::GetLoadsResponse loads;
  ASSERT_TRUE(stub_->GetLoads(&context, pb::GetLoadsRequest(), &loads).ok());
  EXPECT_EQ(loads.num_running_reqs(), 0u);
  EXPECT_EQ(loads.kv_cache_usage(), 0.0);
}

TEST_F(MoeServeServiceTest, ConcurrentStreamsAllComplete) {
  std::vector<std::thread> threads;
  std::vector<GenerateResult> results(16);
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&, i] {
      auto stub = pb::MoeServe::NewStub(server_->NewChannel());
      results[i] = Generate(*stub, Greedy({static_cast<uint32_t>(10 + i), 11, 12}, 8, true));
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 16; ++i) {
    EXPECT_TRUE(results[i].status.ok());
    EXPECT_EQ(results[i].tokens.size(), 8u);
    // Batch invariance: the same prompt alone gives the same tokens.
    const auto alone = Generate(*stub_, Greedy({static_cast<uint32_t>(10 + i), 11, 12}, 8, false));
    EXPECT_EQ(results[i].tokens, alone.tokens) << "request " << i;
  }
}

TEST_F(MoeServeServiceTest, InfoRpcs) {
  grpc::ClientContext c1;
  pb::GetModelInfoResponse info;
  ASSERT_TRUE(stub_->GetModelInfo(&c1, pb::GetModelInfoRequest(), &info).ok());
  EXPECT_EQ(info.model_type(), "qwen3_moe");
  EXPECT_EQ(info.vocab_size(), 512u);
  EXPECT_EQ(info.num_experts(), 8u);
  EXPECT_EQ(info.experts_per_token(), 2u);
  EXPECT_EQ(info.max_context_length(), 256u);
  EXPECT_FALSE(info.has_tokenizer());
  ASSERT_EQ(info.eos_token_ids_size(), 1);
  EXPECT_EQ(info.eos_token_ids(0), 2u);
  grpc::ClientContext c2;
  pb::GetServerInfoResponse server;
  ASSERT_TRUE(stub_->GetServerInfo(&c2, pb::GetServerInfoRequest(), &server).ok());
  EXPECT_FALSE(server.version().empty());
  EXPECT_FALSE(server.draining());
  EXPECT_GT(server.uptime_seconds(), 0.0);
  EXPECT_EQ(server.backend(), "reference");
}

TEST(MoeServeHealthTest, NotServingUntilReadyThenDrainingRefusesNewWork) {
  TestServerOptions options;
  options.ready = false;
  TestServer server(options);
  auto channel = server.NewChannel();
  auto stub = pb::MoeServe::NewStub(channel);
  for (const std::string& name : Server::ServiceNames()) {
    EXPECT_EQ(HealthCheck(channel, name), std::make_pair(grpc::StatusCode::OK, 2)) << name;
  }
  EXPECT_EQ(HealthCheck(channel, "no.such.Service").first, grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Generate(*stub, Greedy({1, 2}, 2, true)).status.error_code(),
            grpc::StatusCode::UNAVAILABLE);
  server.server().SetReady();
  for (const std::string& name : Server::ServiceNames()) {
    EXPECT_EQ(HealthCheck(channel, name), std::make_pair(grpc::StatusCode::OK, 1)) << name;
  }
  // A long request in flight while draining finishes; new ones are refused.
  GenerateResult in_flight;
  std::thread runner([&] { in_flight = Generate(*stub, Greedy({1, 2}, 40, true)); });
  while (server.gateway().active_requests() == 0) std::this_thread::yield();
  std::thread drainer([&] { server.server().Drain(30.0); });
  while (!server.gateway().draining()) std::this_thread::yield();
  EXPECT_EQ(HealthCheck(channel, "").second, 2);
  EXPECT_EQ(Generate(*stub, Greedy({1, 2}, 2, true)).status.error_code(),
            grpc::StatusCode::UNAVAILABLE);
  runner.join();
  drainer.join();
  EXPECT_TRUE(in_flight.status.ok()) << in_flight.status.error_message();
  EXPECT_EQ(in_flight.tokens.size(), 40u);
}

TEST(MoeServeOverloadTest, QueueFullIsResourceExhaustedWithRetryHint) {
  TestServerOptions options;
  options.scheduler.max_waiting = 2;
  options.scheduler.max_num_seqs = 1;
  TestServer server(options);
  std::vector<std::thread> threads;
  std::mutex mu;
  int exhausted = 0, ok = 0;
  bool hint = false;
  for (int i = 0; i < 12; ++i) {
    threads.emplace_back([&] {
      auto stub = pb::MoeServe::NewStub(server.NewChannel());
      const auto r = Generate(*stub, Greedy({1, 2, 3}, 20, true));
      std::lock_guard<std::mutex> lock(mu);
      if (r.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
        ++exhausted;
        hint = hint || r.trailers.count("retry-after-ms") > 0;
      } else if (r.status.ok()) {
        ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_GT(exhausted, 0);
  EXPECT_GT(ok, 0);
  EXPECT_EQ(exhausted + ok, 12);
  EXPECT_TRUE(hint);
}

TEST(MoeServeTextTest, TextInStreamsTextOutAndStopStringsTrim) {
  TestServerOptions options;
  options.preset = "demo";
  options.max_context = 128;
  TestServer server(options);
  ASSERT_NE(server.tokenizer(), nullptr);
  auto stub = pb::MoeServe::NewStub(server.NewChannel());
  pb::GenerateRequest request;
  request.set_text("The quick brown fox");
  request.mutable_sampling()->set_temperature(0.f);
  request.mutable_sampling()->set_max_tokens(24);
  request.mutable_sampling()->set_ignore_eos(true);
  request.set_stream(true);
  const auto free_run = Generate(*stub, request);
  ASSERT_TRUE(free_run.status.ok()) << free_run.status.error_message();
  std::vector<int32_t> ids(free_run.tokens.begin(), free_run.tokens.end());
  EXPECT_EQ(free_run.text, server.tokenizer()->Decode(ids, {.skip_special_tokens = true}))
      << "the streamed text concatenates to the decoded output";
  // Stop at a piece of text from the middle of the free run.
  const std::string& text = free_run.text;
  ASSERT_GT(text.size(), 12u);
  const std::string stop = text.substr(text.size() / 2, 3);
  request.mutable_sampling()->add_stop(stop);
  const auto stopped = Generate(*stub, request);
  ASSERT_TRUE(stopped.status.ok());
  EXPECT_EQ(stopped.complete.finish_reason(), pb::STOP);
  EXPECT_EQ(stopped.complete.matched_stop_str(), stop);
  EXPECT_EQ(stopped.text, text.substr(0, text.find(stop)));
  EXPECT_LT(stopped.tokens.size(), free_run.tokens.size());
}

}  // namespace
}  // namespace moe::serving

namespace moe::serving {
namespace {

// The zero-cost engine behind the serving benchmarks: no weights, deterministic tokens, the full
// gRPC and scheduling path.
TEST(MoeServeNullBackendTest, ManyStreamsEachGetEveryToken) {
  TestServerOptions options;
  options.backend = "null";
  TestServer server(options);
  std::vector<std::thread> threads;
  std::vector<GenerateResult> results(32);
  for (int i = 0; i < 32; ++i) {
    threads.emplace_back([&, i] {
      auto stub = pb::MoeServe::NewStub(server.NewChannel());
      results[i] = Generate(*stub, Greedy({1, 2, static_cast<uint32_t>(i)}, 50, true));
    });
  }
  for (auto& t : threads) t.join();
  for (const GenerateResult& r : results) {
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_EQ(r.tokens.size(), 50u);
    EXPECT_EQ(r.complete.completion_tokens(), 50u);
  }
  EXPECT_EQ(server.gateway().active_requests(), 0);
}

}  // namespace
}  // namespace moe::serving
