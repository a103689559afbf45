// End to end: the harness against a real `moeserve serve --backend null` on 127.0.0.1 (started
// from MOESERVE_BIN, which CTest sets), over both APIs. Every request sent comes back exactly once,
// with every message the server says it sent, and the server is idle afterwards.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "bench/serve/bench_serve.h"
#include "bench/serve/load_driver.h"
#include "bench/serve/metrics.h"
#include "tests/testing/test_models.h"

namespace moe::bench {
namespace {

const char* MoeserveBin() {
  const char* bin = std::getenv("MOESERVE_BIN");
  return bin != nullptr && access(bin, X_OK) == 0 ? bin : nullptr;
}

// `moeserve serve --backend null` as a child process; the port comes from its "listening on" line.
class ServerProcess {
 public:
  static std::unique_ptr<ServerProcess> Start(const std::string& model_dir) {
    const char* bin = MoeserveBin();
    if (bin == nullptr) return nullptr;
    int out[2];
    if (pipe(out) != 0) return nullptr;
    const pid_t pid = fork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGTERM);  // never outlive a crashed test
      dup2(out[1], STDOUT_FILENO);
      const int devnull = open("/dev/null", O_WRONLY);
      dup2(devnull, STDERR_FILENO);
      close(out[0]);
      close(out[1]);
      execl(bin, bin, "--log-level", "warning", "serve", "--backend", "null", "--model",
            model_dir.c_str(), "--port", "0", "--max-num-seqs", "256", static_cast<char*>(nullptr));
      _exit(127);
    }
    close(out[1]);
    auto server = std::unique_ptr<ServerProcess>(new ServerProcess(pid, out[0]));
    std::string text;
    char buf[256];
    for (int waited_ms = 0; waited_ms < 30000;) {
      pollfd p{out[0], POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) {
        waited_ms += 100;
        continue;
      }
      const ssize_t n = read(out[0], buf, sizeof(buf));
      if (n <= 0) break;
      text.append(buf, static_cast<size_t>(n));
      const size_t at = text.find("listening on ");
      const size_t eol = at == std::string::npos ? at : text.find('\n', at);
      if (eol != std::string::npos) {
        const std::string addr = text.substr(at + 13, eol - at - 13);
        server->port_ = std::atoi(addr.substr(addr.rfind(':') + 1).c_str());
        return server;
      }
    }
    return nullptr;
  }

  ~ServerProcess() {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    close(stdout_fd_);
  }

  int port() const { return port_; }
  pid_t pid() const { return pid_; }

 private:
  ServerProcess(pid_t pid, int fd) : pid_(pid), stdout_fd_(fd) {}
  pid_t pid_;
  int stdout_fd_;
  int port_ = 0;
};

class BenchServeE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (MoeserveBin() == nullptr) return;
    server_ = ServerProcess::Start(moe::testing::PresetModelDir("tiny")).release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    if (MoeserveBin() == nullptr) GTEST_SKIP() << "MOESERVE_BIN is not set";
    ASSERT_NE(server_, nullptr) << "moeserve serve did not start";
  }

  static TargetOptions Target(Api api = Api::kNative) {
    TargetOptions t;
    t.port = server_->port();
    t.api = api;
    return t;
  }

  static std::unique_ptr<LoadDriver> Connect(Api api = Api::kNative) {
    auto d = LoadDriver::Connect(Target(api));
    EXPECT_TRUE(d.ok()) << d.status().message();
    return d.ok() ? std::move(*d) : nullptr;
  }

  static Workload RandomWorkload(LoadDriver& d, int64_t n, int in, int out) {
    auto facts = d.GetModelInfo();
    EXPECT_TRUE(facts.ok());
    WorkloadOptions o;
    o.num_prompts = n;
    o.random_input_len = in;
    o.random_output_len = out;
    auto w = BuildWorkload(o, *facts, nullptr);
    EXPECT_TRUE(w.ok()) << w.status().message();
    return std::move(*w);
  }

  // The server finished everything it was given.
  static void ExpectServerIdle(LoadDriver& d) {
    ServerLoads loads;
    for (int i = 0; i < 100; ++i) {
      auto l = d.GetLoads();
      ASSERT_TRUE(l.ok());
      loads = *l;
      if (loads.running == 0 && loads.waiting == 0 && loads.active_requests == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_EQ(loads.running, 0);
    EXPECT_EQ(loads.waiting, 0);
    EXPECT_EQ(loads.active_requests, 0);
  }

  // Every request came back once, complete, with every message the server sent.
  static void ExpectAllDelivered(const RunResult& r, int64_t n, int output_len) {
    ASSERT_EQ(static_cast<int64_t>(r.records.size()), n);
    std::set<std::string> ids;
    for (const RequestRecord& rec : r.records) {
      EXPECT_TRUE(ids.insert(rec.request_id).second) << "duplicate " << rec.request_id;
      ASSERT_TRUE(rec.success) << rec.request_id << ": " << rec.error;
      EXPECT_EQ(rec.output_tokens, output_len);
      int sum = 0;
      for (int32_t k : rec.chunk_ntokens) sum += k;
      EXPECT_EQ(sum, output_len) << rec.request_id;
      EXPECT_EQ(rec.finish_reason, "length");
      ASSERT_TRUE(rec.perf.present()) << rec.request_id;
      // Same host, same wall clock: the server saw the request after the harness sent it.
      const int64_t in_flight_ns = rec.perf.arrival_ns - rec.t_send_wall_ns;
      EXPECT_GE(in_flight_ns, -1'000'000);  // 1 ms of clock-read slack
      EXPECT_LT(in_flight_ns, 5'000'000'000);
      EXPECT_LE(rec.perf.arrival_ns, rec.perf.first_token_ns);
      EXPECT_GE(rec.t_end, rec.t_send);
    }
  }

  static ServerProcess* server_;
};

ServerProcess* BenchServeE2eTest::server_ = nullptr;

TEST_F(BenchServeE2eTest, NativeEveryRequestOnceAndServerIdle) {
  auto d = Connect();
  ASSERT_NE(d, nullptr);
  auto facts = d->GetModelInfo();
  ASSERT_TRUE(facts.ok());
  EXPECT_EQ(facts->vocab_size, 512);
  const Workload w = RandomWorkload(*d, 300, 16, 20);
  RunOptions o;
  o.num_requests = 300;
  o.max_concurrency = 32;
  o.num_warmups = 5;
  auto r = d->Run(w, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->warmups_completed, 5);
  ExpectAllDelivered(*r, 300, 20);
  for (const RequestRecord& rec : r->records) {
    // Native: the server counts its messages (chunks + the final Complete).
    EXPECT_EQ(rec.num_messages, rec.perf.num_chunks_sent) << rec.request_id;
    EXPECT_EQ(rec.prompt_tokens, 16);
  }
  const BenchMetrics m = ComputeMetrics(r->records, r->duration_s, {});
  EXPECT_EQ(m.completed, 300);
  EXPECT_EQ(m.failed, 0);
  EXPECT_EQ(m.total_output, 300 * 20);
  EXPECT_LE(m.max_concurrent_requests, 32);
  EXPECT_EQ(m.server_perf_joined, 300);
  ExpectServerIdle(*d);
}

TEST_F(BenchServeE2eTest, KServeEveryRequestOnceAndServerIdle) {
  auto d = Connect(Api::kKServe);
  ASSERT_NE(d, nullptr);
  const Workload w = RandomWorkload(*d, 200, 12, 9);
  RunOptions o;
  o.num_requests = 200;
  o.max_concurrency = 16;
  auto r = d->Run(w, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ExpectAllDelivered(*r, 200, 9);
  for (const RequestRecord& rec : r->records) EXPECT_EQ(rec.prompt_tokens, 12);
  ExpectServerIdle(*d);
}

TEST_F(BenchServeE2eTest, OpenLoopRateAndClosedLoopDuration) {
  auto d = Connect();
  ASSERT_NE(d, nullptr);
  const Workload w = RandomWorkload(*d, 100, 8, 4);
  RunOptions o;
  o.num_requests = 100;
  o.arrival.request_rate = 200;
  o.arrival.seed = 1;
  auto r = d->Run(w, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ExpectAllDelivered(*r, 100, 4);
  // The last release is at N / rate = 0.5 s; sends follow the schedule closely.
  EXPECT_GE(r->duration_s, 0.5);
  EXPECT_LT(r->duration_s, 3.0);
  for (const RequestRecord& rec : r->records) EXPECT_GE(rec.t_send, rec.t_scheduled);

  // Closed loop bounded by time alone: never more than 4 in flight, nothing released after 0.3 s.
  RunOptions c;
  c.num_requests = INT64_MAX;
  c.concurrency = 4;
  c.duration_s = 0.3;
  r = d->Run(w, c);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->stopped_by_duration);
  EXPECT_GT(r->records.size(), 4u);
  for (const RequestRecord& rec : r->records) {
    EXPECT_TRUE(rec.success);
    EXPECT_LT(rec.t_scheduled, 0.3);
  }
  EXPECT_LE(ComputeMetrics(r->records, r->duration_s, {}).max_concurrent_requests, 4);
  ExpectServerIdle(*d);
}

TEST_F(BenchServeE2eTest, TtftAgreesWithServerAtLowLoad) {
  auto d = Connect();
  ASSERT_NE(d, nullptr);
  const Workload w = RandomWorkload(*d, 60, 32, 8);
  RunOptions o;
  o.num_requests = 60;
  o.arrival.request_rate = 100;
  auto r = d->Run(w, o);
  ASSERT_TRUE(r.ok());
  const BenchMetrics m = ComputeMetrics(r->records, r->duration_s, {});
  EXPECT_EQ(m.server_perf_joined, 60);
  // The target is 1 ms at p50 (bench/results); a shared CI machine gets a looser bound.
  EXPECT_GE(m.ttft_overhead.median, 0.0);
  EXPECT_LT(m.ttft_overhead.median, 10.0);
}

TEST_F(BenchServeE2eTest, ErrorsAreCountedByGrpcCode) {
  // KServe: an unknown model is NOT_FOUND for every request (triton_grpc_error makes it a status).
  TargetOptions t = Target(Api::kKServe);
  t.kserve_model = "no_such_model";
  auto d = LoadDriver::Connect(t);
  ASSERT_TRUE(d.ok());
  const Workload w = RandomWorkload(**d, 10, 4, 4);
  RunOptions o;
  o.num_requests = 10;
  auto r = (*d)->Run(w, o);
  ASSERT_TRUE(r.ok());
  BenchMetrics m = ComputeMetrics(r->records, r->duration_s, {});
  EXPECT_EQ(m.failed, 10);
  EXPECT_EQ(m.errors_by_code["NOT_FOUND"], 10);

  // Native: a request longer than the context is INVALID_ARGUMENT (the workload builder would
  // refuse it, so the context check is switched off here).
  auto native = Connect();
  auto facts = native->GetModelInfo();
  ASSERT_TRUE(facts.ok());
  facts->max_context = 0;
  WorkloadOptions wo;
  wo.num_prompts = 5;
  wo.random_input_len = 8;
  wo.random_output_len = 100000;
  auto too_long = BuildWorkload(wo, *facts, nullptr);
  ASSERT_TRUE(too_long.ok());
  o.num_requests = 5;
  r = native->Run(*too_long, o);
  ASSERT_TRUE(r.ok());
  m = ComputeMetrics(r->records, r->duration_s, {});
  EXPECT_EQ(m.failed, 5);
  EXPECT_EQ(m.errors_by_code["INVALID_ARGUMENT"], 5);
  EXPECT_FALSE(r->records[0].error.empty());
}

TEST_F(BenchServeE2eTest, ClusteredWorkloadOnAnExpertSpecialisedModel) {
  auto server = ServerProcess::Start(moe::testing::PresetModelDir("tiny", 0, 4));
  ASSERT_NE(server, nullptr);
  TargetOptions t;
  t.port = server->port();
  auto d = LoadDriver::Connect(t);
  ASSERT_TRUE(d.ok());
  auto facts = (*d)->GetModelInfo();
  ASSERT_TRUE(facts.ok());
  EXPECT_EQ(facts->expert_clusters, 4);
  WorkloadOptions wo;
  wo.dataset_name = "clustered";
  wo.num_prompts = 40;
  wo.random_input_len = 24;
  wo.random_output_len = 6;
  auto w = BuildWorkload(wo, *facts, nullptr);
  ASSERT_TRUE(w.ok()) << w.status().message();
  RunOptions o;
  o.num_requests = 40;
  o.max_concurrency = 8;
  auto r = (*d)->Run(*w, o);
  ASSERT_TRUE(r.ok());
  ExpectAllDelivered(*r, 40, 6);
  std::set<int> clusters;
  for (const RequestRecord& rec : r->records) clusters.insert(rec.cluster);
  EXPECT_GT(clusters.size(), 1u);
}

TEST_F(BenchServeE2eTest, SweepAndCapacitySearchWriteOnePointEach) {
  BenchServeOptions o;
  o.target = Target();
  o.workload.num_prompts = 30;
  o.workload.random_input_len = 8;
  o.workload.random_output_len = 4;
  o.num_prompts_given = true;
  o.sweep_rates = {100, std::numeric_limits<double>::infinity()};
  o.goodput = {"e2el:10000"};
  const std::string dir = moe::testing::MakeScratchDir("sweep");
  o.json_path = dir + "/sweep.json";
  o.raw_path = dir + "/sweep.jsonl";
  std::ostringstream out;
  auto j = RunBenchServe(o, out);
  ASSERT_TRUE(j.ok()) << j.status().message();
  ASSERT_EQ((*j)["points"].size(), 2u);
  EXPECT_EQ((*j)["points"][0]["request_rate"], 100.0);
  EXPECT_EQ((*j)["points"][1]["request_rate"], "inf");
  EXPECT_EQ((*j)["points"][1]["completed"], 30);
  EXPECT_DOUBLE_EQ((*j)["points"][0]["slo_attainment"].get<double>(), 1.0);
  std::ifstream raw(o.raw_path);
  int lines = 0;
  std::set<int> points;
  for (std::string line; std::getline(raw, line); ++lines) {
    points.insert(nlohmann::json::parse(line)["point"].get<int>());
  }
  EXPECT_EQ(lines, 60);
  EXPECT_EQ(points, (std::set<int>{0, 1}));
  EXPECT_NE(out.str().find("Sweep summary"), std::string::npos);

  // An SLO nothing meets: every probe fails and the capacity is 0 after 1 + 3 points.
  BenchServeOptions c = o;
  c.sweep_rates.clear();
  c.capacity_search = true;
  c.capacity_max_rate = 400;
  c.capacity_iterations = 3;
  c.goodput = {"ttft:0", "e2el:0"};
  c.json_path = dir + "/capacity.json";
  c.raw_path.clear();
  j = RunBenchServe(c, out);
  ASSERT_TRUE(j.ok()) << j.status().message();
  EXPECT_EQ((*j)["mode"], "capacity_search");
  EXPECT_EQ((*j)["points"].size(), 4u);
  EXPECT_EQ((*j)["capacity_request_rate"], 0.0);

  // An SLO everything meets: the maximum rate passes at once.
  c.goodput = {"e2el:60000"};
  j = RunBenchServe(c, out);
  ASSERT_TRUE(j.ok());
  EXPECT_EQ((*j)["points"].size(), 1u);
  EXPECT_EQ((*j)["capacity_request_rate"], 400.0);
}

TEST_F(BenchServeE2eTest, TraceReplayFollowsTimestamps) {
  const std::string dir = moe::testing::MakeScratchDir("trace_e2e");
  {
    std::ofstream trace(dir + "/trace.jsonl");
    for (int i = 0; i < 20; ++i) {
      trace << "{\"timestamp\": " << 5000 + 25 * i << ", \"input_length\": " << 10 + i
            << ", \"output_length\": 3, \"hash_ids\": [" << i % 2 << "]}\n";
    }
  }
  BenchServeOptions o;
  o.target = Target();
  o.workload.dataset_name = "trace";
  o.workload.dataset_path = dir + "/trace.jsonl";
  o.workload.trace_block_size = 8;
  o.raw_path = dir + "/raw.jsonl";
  std::ostringstream out;
  auto j = RunBenchServe(o, out);  // no --num-prompts: the whole file
  ASSERT_TRUE(j.ok()) << j.status().message();
  EXPECT_EQ((*j)["completed"], 20);
  EXPECT_EQ((*j)["total_input"], 20 * 10 + 190);
  EXPECT_GE((*j)["duration"].get<double>(), 0.475);
  std::ifstream raw(o.raw_path);
  int i = 0;
  for (std::string line; std::getline(raw, line); ++i) {
    const nlohmann::json r = nlohmann::json::parse(line);
    EXPECT_NEAR(r["t_scheduled"].get<double>(), 0.025 * i, 1e-9);
    EXPECT_GE(r["t_send"].get<double>(), r["t_scheduled"].get<double>());
  }
  EXPECT_EQ(i, 20);
}

std::string RunCommand(const std::string& cmd, int* exit_code) {
  std::string out;
  FILE* f = popen((cmd + " 2>&1").c_str(), "r");
  if (f == nullptr) return out;
  char buf[512];
  while (size_t n = fread(buf, 1, sizeof(buf), f)) out.append(buf, n);
  const int status = pclose(f);
  *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

TEST_F(BenchServeE2eTest, CommandLineWritesVllmKeysAndRawLines) {
  const std::string dir = moe::testing::MakeScratchDir("cli");
  int code = -1;
  const std::string out =
      RunCommand(absl::StrCat(MoeserveBin(), " bench serve --port ", server_->port(),
                              " --num-prompts 50 --random-input-len 16 --random-output-len 8 "
                              "--request-rate 500 --goodput ttft:1000 tpot:1000 --json ",
                              dir, "/r.json --raw ", dir, "/r.jsonl --no-progress"),
                 &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("Serving Benchmark Result"), std::string::npos);
  std::ifstream in(dir + "/r.json");
  const nlohmann::json j = nlohmann::json::parse(in);
  for (const char* key : {"completed",
                          "failed",
                          "total_input",
                          "total_output",
                          "request_throughput",
                          "request_goodput",
                          "output_throughput",
                          "total_token_throughput",
                          "mean_ttft_ms",
                          "median_ttft_ms",
                          "std_ttft_ms",
                          "p99_ttft_ms",
                          "mean_tpot_ms",
                          "p99_tpot_ms",
                          "mean_itl_ms",
                          "p99_itl_ms",
                          "mean_e2el_ms",
                          "p99_e2el_ms",
                          "max_output_tokens_per_s",
                          "max_concurrent_requests",
                          "duration"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["completed"], 50);
  EXPECT_EQ(j["total_output"], 400);
  std::ifstream raw(dir + "/r.jsonl");
  int lines = 0;
  for (std::string line; std::getline(raw, line);) ++lines;
  EXPECT_EQ(lines, 50);
}

TEST_F(BenchServeE2eTest, RefusesNonLoopbackHosts) {
  int code = -1;
  const std::string out =
      RunCommand(absl::StrCat(MoeserveBin(), " bench serve --host 10.1.2.3 --port 1"), &code);
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find("not a loopback address"), std::string::npos) << out;
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("127.8.9.10"));
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_TRUE(IsLoopbackHost("::1"));
  EXPECT_TRUE(IsLoopbackHost("[::1]"));
  EXPECT_TRUE(IsLoopbackHost("::ffff:127.0.0.1"));
  EXPECT_FALSE(IsLoopbackHost("0.0.0.0"));
  EXPECT_FALSE(IsLoopbackHost("192.168.1.1"));
  EXPECT_FALSE(IsLoopbackHost("example.com"));
  EXPECT_FALSE(IsLoopbackHost("128.0.0.1"));
}

}  // namespace
}  // namespace moe::bench
