#include "bench/serve/load_driver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>

#include <chrono>
#include <climits>
#include <cstring>
#include <deque>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "bench/serve/progress.h"
#include "core/clock.h"
#include "inference/grpc_service.grpc.pb.h"
#include "moeserve/v1/moeserve.grpc.pb.h"

namespace moe::bench {

namespace pb = moeserve::v1;
namespace ks = inference;

// --- target ------------------------------------------------------------------------------------

bool IsLoopbackHost(const std::string& host) {
  std::string h = host;
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (h == "localhost" || h == "localhost.") return true;
  in_addr v4;
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6;
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

Status TargetOptions::Validate() const {
  if (!IsLoopbackHost(host)) {
    return InvalidArgument("--host '", host,
                           "' is not a loopback address: moeserve bench serve only load-tests a "
                           "server on this machine (localhost, 127.0.0.0/8 or ::1)");
  }
  if (port < 1 || port > 65535) return InvalidArgument("--port must be in [1, 65535], got ", port);
  if (num_connections < 1 || num_connections > 256) {
    return InvalidArgument("--num-connections must be in [1, 256], got ", num_connections);
  }
  return OkStatus();
}

std::string TargetOptions::address() const {
  if (host.find(':') != std::string::npos && host.front() != '[') {
    return absl::StrCat("[", host, "]:", port);
  }
  return absl::StrCat(host, ":", port);
}

// --- driver ------------------------------------------------------------------------------------

struct LoadDriver::Impl {
  TargetOptions target;
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<pb::MoeServe::Stub>> native;
  std::vector<std::unique_ptr<ks::GRPCInferenceService::Stub>> kserve;
};

LoadDriver::LoadDriver(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LoadDriver::~LoadDriver() = default;

StatusOr<std::unique_ptr<LoadDriver>> LoadDriver::Connect(const TargetOptions& target,
                                                          double connect_timeout_s) {
  MOE_RETURN_IF_ERROR(target.Validate());
  auto impl = std::make_unique<Impl>();
  impl->target = target;
  for (int i = 0; i < target.num_connections; ++i) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    // A private subchannel pool and a distinct argument give every channel its own connection.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("moeserve.bench.connection", i);
    auto channel =
        grpc::CreateCustomChannel(target.address(), grpc::InsecureChannelCredentials(), args);
    const auto deadline = std::chrono::system_clock::now() +
                          std::chrono::milliseconds(static_cast<int64_t>(connect_timeout_s * 1000));
    if (!channel->WaitForConnected(deadline)) {
      return Unavailable("cannot connect to ", target.address(), " within ", connect_timeout_s,
                         " s (is `moeserve serve` running there?)");
    }
    impl->native.push_back(pb::MoeServe::NewStub(channel));
    impl->kserve.push_back(ks::GRPCInferenceService::NewStub(channel));
    impl->channels.push_back(std::move(channel));
  }
  return std::unique_ptr<LoadDriver>(new LoadDriver(std::move(impl)));
}

namespace {

Status FromGrpc(const grpc::Status& s, std::string_view what) {
  if (s.ok()) return OkStatus();
  return Status(static_cast<absl::StatusCode>(s.error_code()),
                absl::StrCat(std::string(what), ": ", s.error_message()));
}

void SetDeadline(grpc::ClientContext* ctx, double seconds) {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6)));
}

}  // namespace

StatusOr<ModelFacts> LoadDriver::GetModelInfo() {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 10);
  pb::GetModelInfoResponse r;
  MOE_RETURN_IF_ERROR(FromGrpc(impl_->native[0]->GetModelInfo(&ctx, pb::GetModelInfoRequest(), &r),
                               "GetModelInfo"));
  ModelFacts f;
  f.served_model_name = r.served_model_name();
  f.vocab_size = static_cast<int>(r.vocab_size());
  for (uint32_t id : r.eos_token_ids()) f.eos_token_ids.push_back(static_cast<int>(id));
  f.bos_token_id = r.bos_token_id();
  f.expert_clusters = static_cast<int>(r.expert_clusters());
  f.max_context = static_cast<int>(r.max_context_length());
  f.has_tokenizer = r.has_tokenizer();
  return f;
}

StatusOr<ServerLoads> LoadDriver::GetLoads() {
  ServerLoads loads;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 10);
    pb::GetLoadsResponse r;
    MOE_RETURN_IF_ERROR(
        FromGrpc(impl_->native[0]->GetLoads(&ctx, pb::GetLoadsRequest(), &r), "GetLoads"));
    loads.running = static_cast<int>(r.num_running_reqs());
    loads.waiting = static_cast<int>(r.num_waiting_reqs());
    loads.total_steps = r.total_steps();
  }
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 10);
    pb::GetServerInfoResponse r;
    MOE_RETURN_IF_ERROR(FromGrpc(
        impl_->native[0]->GetServerInfo(&ctx, pb::GetServerInfoRequest(), &r), "GetServerInfo"));
    loads.active_requests = static_cast<int>(r.active_requests());
  }
  return loads;
}

// --- one run -------------------------------------------------------------------------------------

namespace {

enum Op : uintptr_t { kStart = 0, kRead = 1, kWrite = 2, kFinish = 3 };

class Runner;

// One request in flight. Operations complete on the runner's queue; the tag is the call's address
// with the operation in its two low bits.
struct Call {
  explicit Call(RequestRecord* r) : rec(r) {}
  virtual ~Call() = default;
  // Handles one completed operation at `now` (run clock); true when the call is over.
  virtual bool OnEvent(Op op, bool ok, double now) = 0;

  void* Tag(Op op) { return reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(this) | op); }
  void AddChunk(double now, int n) {
    rec->chunk_times.push_back(now);
    rec->chunk_ntokens.push_back(n);
  }
  // Fills the record's outcome from the final status.
  void Conclude(double now) {
    rec->t_end = now;
    int sum = 0;
    for (int32_t n : rec->chunk_ntokens) sum += n;
    if (rec->output_tokens == 0) rec->output_tokens = sum;
    if (!status.ok()) {
      rec->success = false;
      rec->grpc_code = status.error_code();
      rec->error = status.error_message();
    } else if (!rec->error.empty()) {
      rec->success = false;  // an in-band error (KServe error_message) or a missing final message
      if (rec->grpc_code == 0) rec->grpc_code = grpc::StatusCode::UNKNOWN;
    } else if (rec->finish_reason == "abort") {
      rec->success = false;
      rec->grpc_code = grpc::StatusCode::ABORTED;
      rec->error = "the server aborted the request";
    } else {
      rec->success = true;
    }
  }

  RequestRecord* rec;
  grpc::ClientContext ctx;
  grpc::Status status;
};

const char* FinishReasonString(pb::FinishReason r) {
  switch (r) {
    case pb::STOP:
      return "stop";
    case pb::LENGTH:
      return "length";
    case pb::ABORT:
      return "abort";
    default:
      return "";
  }
}

// MoeServe.Generate, streaming: StartCall and the first Read are issued together; Finish follows
// the end of the stream.
struct NativeCall final : Call {
  using Call::Call;
  bool OnEvent(Op op, bool ok, double now) override {
    switch (op) {
      case kStart:
        start_done = true;
        return finish_done;
      case kRead:
        if (!ok) {
          reader->Finish(&status, Tag(kFinish));
          return false;
        }
        ++rec->num_messages;
        OnMessage(now);
        reader->Read(&response, Tag(kRead));
        return false;
      case kFinish:
        if (status.ok() && !got_complete)
          rec->error = "the stream ended without a Complete message";
        Conclude(now);
        finish_done = true;
        return start_done;
      default:
        return false;
    }
  }

  void OnMessage(double now) {
    if (response.has_chunk()) {
      const pb::Chunk& c = response.chunk();
      if (c.token_ids_size() > 0) AddChunk(now, c.token_ids_size());
      rec->prompt_tokens = static_cast<int>(c.prompt_tokens());
      rec->output_tokens = static_cast<int>(c.completion_tokens());
    } else if (response.has_complete()) {
      const pb::Complete& c = response.complete();
      got_complete = true;
      if (c.output_ids_size() > 0) AddChunk(now, c.output_ids_size());
      rec->prompt_tokens = static_cast<int>(c.prompt_tokens());
      rec->output_tokens = static_cast<int>(c.completion_tokens());
      rec->finish_reason = FinishReasonString(c.finish_reason());
      if (c.has_perf()) {
        const pb::PerfMetrics& p = c.perf();
        rec->perf.arrival_ns = p.arrival_time_ns();
        rec->perf.first_scheduled_ns = p.first_scheduled_time_ns();
        rec->perf.first_token_ns = p.first_token_time_ns();
        rec->perf.last_token_ns = p.last_token_time_ns();
        rec->perf.num_preemptions = static_cast<int>(p.num_preemptions());
        rec->perf.num_chunks_sent = static_cast<int>(p.num_chunks_sent());
      }
    }
  }

  pb::GenerateResponse response;
  std::unique_ptr<grpc::ClientAsyncReader<pb::GenerateResponse>> reader;
  bool start_done = false;
  bool finish_done = false;
  bool got_complete = false;
};

template <typename T>
T ReadRaw(const std::string& raw, size_t index = 0) {
  T v{};
  if (raw.size() >= (index + 1) * sizeof(T))
    std::memcpy(&v, raw.data() + index * sizeof(T), sizeof(T));
  return v;
}

// KServe ModelStreamInfer with one request per stream (WriteLast), so a failure gets its own gRPC
// status (the `triton_grpc_error` header) and streams never queue behind each other. StartCall
// and the write share one operation set in gRPC, so the metadata is corked into the write.
struct KServeCall final : Call {
  using Call::Call;
  bool OnEvent(Op op, bool ok, double now) override {
    switch (op) {
      case kStart:
        start_done = true;
        break;
      case kWrite:
        write_done = true;
        break;
      case kRead:
        if (!ok) {
          read_done = true;
          break;
        }
        ++rec->num_messages;
        OnMessage(now);
        stream->Read(&response, Tag(kRead));
        return false;
      case kFinish:
        if (status.ok() && !got_final && rec->error.empty()) {
          rec->error = "the stream ended without a final response";
        }
        Conclude(now);
        finish_done = true;
        break;
    }
    if (start_done && write_done && read_done && !finish_started) {
      finish_started = true;
      stream->Finish(&status, Tag(kFinish));
    }
    return finish_done && start_done && write_done;
  }

  void OnMessage(double now) {
    if (!response.error_message().empty()) {
      rec->error = response.error_message();
      got_final = true;
      return;
    }
    const ks::ModelInferResponse& r = response.infer_response();
    int tokens = 0;
    bool counted = false;
    for (int i = 0; i < r.outputs_size(); ++i) {
      const std::string& name = r.outputs(i).name();
      static const std::string kEmpty;
      const std::string& raw = i < r.raw_output_contents_size() ? r.raw_output_contents(i) : kEmpty;
      if (name == "output_ids") {
        tokens = static_cast<int>(raw.size() / sizeof(int32_t));
        counted = true;
      } else if (name == "num_output_tokens") {
        tokens = static_cast<int>(ReadRaw<uint32_t>(raw));
        counted = true;
      } else if (name == "num_input_tokens") {
        rec->prompt_tokens = static_cast<int>(ReadRaw<uint32_t>(raw));
      } else if (name == "finish_reason") {
        // BYTES: 4-byte little-endian length, then the string.
        const uint32_t len = ReadRaw<uint32_t>(raw);
        if (len > 0 && raw.size() >= 4 + len) rec->finish_reason = raw.substr(4, len);
      } else if (name == "arrival_time_ns") {
        rec->perf.arrival_ns = ReadRaw<int64_t>(raw);
      } else if (name == "first_scheduled_time_ns") {
        rec->perf.first_scheduled_ns = ReadRaw<int64_t>(raw);
      } else if (name == "first_token_time_ns") {
        rec->perf.first_token_ns = ReadRaw<int64_t>(raw);
      } else if (name == "last_token_time_ns") {
        rec->perf.last_token_ns = ReadRaw<int64_t>(raw);
      }
    }
    (void)counted;
    if (tokens > 0) {
      AddChunk(now, tokens);
      rec->output_tokens += tokens;
    }
    auto it = r.parameters().find("triton_final_response");
    if (it != r.parameters().end() && it->second.bool_param()) {
      got_final = true;
      if (rec->finish_reason.empty()) {
        rec->finish_reason = rec->output_tokens >= rec->max_tokens ? "length" : "stop";
      }
    }
  }

  ks::ModelStreamInferResponse response;
  std::unique_ptr<
      grpc::ClientAsyncReaderWriter<ks::ModelInferRequest, ks::ModelStreamInferResponse>>
      stream;
  bool start_done = true;  // corked StartCall: no completion
  bool write_done = false;
  bool read_done = false;
  bool finish_started = false;
  bool finish_done = false;
  bool got_final = false;
};

ks::ModelInferRequest::InferInputTensor* AddInput(ks::ModelInferRequest* r, const char* name,
                                                  const char* datatype,
                                                  std::initializer_list<int64_t> shape,
                                                  const void* data, size_t bytes) {
  auto* t = r->add_inputs();
  t->set_name(name);
  t->set_datatype(datatype);
  for (int64_t d : shape) t->add_shape(d);
  r->add_raw_input_contents()->assign(static_cast<const char*>(data), bytes);
  return t;
}

class Runner {
 public:
  Runner(LoadDriver::Impl* impl, const Workload& workload, const RunOptions& options)
      : impl_(impl), workload_(workload), o_(options) {}

  StatusOr<RunResult> Run() {
    RunResult result;
    if (o_.num_warmups > 0) {
      std::deque<RequestRecord> warm;
      start_ns_ = MonotonicNanos();
      Drive(o_.num_warmups, /*warmup=*/true, &warm);
      for (const RequestRecord& r : warm) result.warmups_completed += r.success ? 1 : 0;
    }
    // The schedule: trace timestamps, the arrival process, or "now" (closed loop, rate inf).
    if (o_.concurrency <= 0) {
      if (workload_.is_trace()) {
        const int64_t n = std::min<int64_t>(o_.num_requests, workload_.size());
        release_.resize(n);
        for (int64_t i = 0; i < n; ++i) {
          release_[i] = workload_.spec(i).timestamp_s * o_.trace_time_scale;
        }
      } else if (o_.arrival.timed()) {
        release_ = SendTimes(o_.arrival, o_.num_requests);
      }
    }
    const int64_t total = workload_.is_trace()
                              ? std::min<int64_t>(o_.num_requests, workload_.size())
                              : o_.num_requests;
    std::deque<RequestRecord> records;
    result.start_wall_ns = WallNanos();
    start_ns_ = MonotonicNanos();
    const double cpu0 = ProcessCpuSeconds();
    result.stopped_by_duration = Drive(total, /*warmup=*/false, &records);
    result.harness_cpu_s = ProcessCpuSeconds() - cpu0;
    result.duration_s = last_end_;
    result.records.reserve(records.size());
    for (RequestRecord& r : records) result.records.push_back(std::move(r));
    return result;
  }

 private:
  double Now() const { return static_cast<double>(MonotonicNanos() - start_ns_) * 1e-9; }

  static double ProcessCpuSeconds() {
    rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
  }

  // Sends `total` requests under the run's rules and waits for all of them; true when the
  // duration bound stopped the releases.
  bool Drive(int64_t total, bool warmup, std::deque<RequestRecord>* records) {
    const int64_t limit = o_.concurrency > 0       ? o_.concurrency
                          : o_.max_concurrency > 0 ? o_.max_concurrency
                                                   : INT64_MAX;
    const bool timed = !warmup && !release_.empty();
    const double duration = warmup ? 0 : o_.duration_s;
    ProgressBar progress(o_.progress && !warmup, o_.label, total == INT64_MAX ? 0 : total,
                         duration);
    int64_t next = 0;
    in_flight_ = 0;
    done_ = 0;
    failed_ = 0;
    last_end_ = 0;
    bool stopped = false;
    constexpr int kMaxBurst = 32;  // sends per loop turn, so completions keep being timestamped
    constexpr int kMaxDrain = 64;  // completions per loop turn, so releases stay on time
    while (true) {
      double now = Now();
      int burst = 0;
      while (!stopped && next < total && in_flight_ < limit && burst < kMaxBurst) {
        const double release = timed ? release_[next] : now;
        if (release > now) break;
        if (duration > 0 && release > duration) {
          stopped = true;
          break;
        }
        records->emplace_back();
        RequestRecord* rec = &records->back();
        rec->index = next;
        rec->t_scheduled = release;
        Start(next, rec, warmup);
        ++next;
        ++burst;
        now = Now();
      }
      if (!stopped && duration > 0 && now > duration && next < total) stopped = true;
      if ((stopped || next >= total) && in_flight_ == 0) break;
      // Wait for a completion, or until the next release / redraw.
      double wake = now + 0.1;
      if (burst >= kMaxBurst) {
        wake = now;
      } else if (!stopped && next < total && in_flight_ < limit && timed) {
        // gRPC's queue wakes with millisecond granularity: block until shortly before the
        // release, then poll, so releases are late by microseconds rather than up to 1 ms.
        const double spin_from = release_[next] - o_.release_spin_s;
        wake = now >= spin_from ? now : std::min(wake, spin_from);
      }
      if (duration > 0 && !stopped) wake = std::min(wake, duration);
      const gpr_timespec deadline = gpr_time_add(
          gpr_now(GPR_CLOCK_MONOTONIC),
          gpr_time_from_nanos(static_cast<int64_t>(std::max(0.0, wake - now) * 1e9), GPR_TIMESPAN));
      void* tag = nullptr;
      bool ok = false;
      const auto status = cq_.AsyncNext(&tag, &ok, deadline);
      if (status == grpc::CompletionQueue::GOT_EVENT) {
        Dispatch(tag, ok);
        // Take what is already there (bounded, so a busy stream cannot delay due releases).
        for (int drained = 0;
             drained < kMaxDrain && cq_.AsyncNext(&tag, &ok, gpr_time_0(GPR_CLOCK_MONOTONIC)) ==
                                        grpc::CompletionQueue::GOT_EVENT;
             ++drained) {
          Dispatch(tag, ok);
        }
      }
      progress.Update(Now(), done_, in_flight_, failed_);
    }
    progress.Finish(Now(), done_, in_flight_, failed_);
    return stopped;
  }

  void Dispatch(void* tag, bool ok) {
    const uintptr_t bits = reinterpret_cast<uintptr_t>(tag);
    Call* call = reinterpret_cast<Call*>(bits & ~uintptr_t{3});
    const double now = Now();
    if (call->OnEvent(static_cast<Op>(bits & 3), ok, now)) {
      --in_flight_;
      ++done_;
      if (!call->rec->success) ++failed_;
      last_end_ = std::max(last_end_, call->rec->t_end);
      delete call;
    }
  }

  void Start(int64_t index, RequestRecord* rec, bool warmup) {
    const RequestSpec& spec = workload_.spec(index);
    rec->request_id = absl::StrCat(warmup ? "warmup" : o_.request_id_prefix, "-", index);
    rec->cluster = spec.cluster;
    rec->max_tokens = spec.output_len;
    workload_.FillPrompt(spec, &prompt_);
    rec->prompt_tokens =
        spec.source == RequestSpec::Source::kText ? 0 : static_cast<int>(prompt_.size());
    const size_t conn = static_cast<size_t>(round_robin_++ % impl_->channels.size());
    ++in_flight_;
    if (impl_->target.api == Api::kNative) {
      StartNative(spec, rec, conn);
    } else {
      StartKServe(spec, rec, conn);
    }
  }

  void StartNative(const RequestSpec& spec, RequestRecord* rec, size_t conn) {
    pb::GenerateRequest& req = native_request_;
    req.set_request_id(rec->request_id);
    auto* ids = req.mutable_input_ids();
    ids->Clear();
    if (spec.source == RequestSpec::Source::kText) {
      req.set_text(spec.text);
    } else {
      req.clear_text();
      ids->Reserve(static_cast<int>(prompt_.size()));
      for (int32_t t : prompt_) ids->AddAlreadyReserved(static_cast<uint32_t>(t));
    }
    pb::SamplingParams* s = req.mutable_sampling();
    s->set_max_tokens(static_cast<uint32_t>(spec.output_len));
    s->set_ignore_eos(spec.ignore_eos);
    s->set_temperature(o_.temperature);
    req.set_stream(true);
    req.set_return_perf_metrics(o_.return_perf);
    auto* call = new NativeCall(rec);
    SetDeadline(&call->ctx, o_.request_timeout_s);
    rec->t_send = Now();
    rec->t_send_wall_ns = WallNanos();
    call->reader = impl_->native[conn]->PrepareAsyncGenerate(&call->ctx, req, &cq_);
    call->reader->StartCall(call->Tag(kStart));
    call->reader->Read(&call->response, call->Tag(kRead));
  }

  void StartKServe(const RequestSpec& spec, RequestRecord* rec, size_t conn) {
    ks::ModelInferRequest& req = kserve_request_;
    req.Clear();
    req.set_id(rec->request_id);
    const int32_t max_tokens = spec.output_len;
    const int32_t min_tokens = spec.output_len;
    const bool yes = true;
    const bool perf = o_.return_perf;
    if (spec.source == RequestSpec::Source::kText) {
      req.set_model_name(impl_->target.kserve_text_model);
      std::string bytes(4 + spec.text.size(), '\0');
      const uint32_t len = static_cast<uint32_t>(spec.text.size());
      std::memcpy(bytes.data(), &len, 4);
      std::memcpy(bytes.data() + 4, spec.text.data(), spec.text.size());
      AddInput(&req, "text_input", "BYTES", {1, 1}, bytes.data(), bytes.size());
      AddInput(&req, "max_tokens", "INT32", {1, 1}, &max_tokens, 4);
      AddInput(&req, "stream", "BOOL", {1, 1}, &yes, 1);
      AddInput(&req, "exclude_input_in_output", "BOOL", {1, 1}, &yes, 1);
      AddInput(&req, "return_num_output_tokens", "BOOL", {1, 1}, &yes, 1);
      AddInput(&req, "return_num_input_tokens", "BOOL", {1, 1}, &yes, 1);
      AddInput(&req, "return_finish_reason", "BOOL", {1, 1}, &yes, 1);
    } else {
      req.set_model_name(impl_->target.kserve_model);
      const int64_t n = static_cast<int64_t>(prompt_.size());
      const int32_t length = static_cast<int32_t>(n);
      AddInput(&req, "input_ids", "INT32", {1, n}, prompt_.data(), prompt_.size() * 4);
      AddInput(&req, "input_lengths", "INT32", {1, 1}, &length, 4);
      AddInput(&req, "request_output_len", "INT32", {1, 1}, &max_tokens, 4);
      AddInput(&req, "streaming", "BOOL", {1, 1}, &yes, 1);
      AddInput(&req, "exclude_input_in_output", "BOOL", {1, 1}, &yes, 1);
    }
    // TRT-LLM has no ignore_eos: a fixed output length is min_tokens = max_tokens.
    if (spec.ignore_eos) AddInput(&req, "min_tokens", "INT32", {1, 1}, &min_tokens, 4);
    if (o_.temperature > 0) {
      AddInput(&req, "temperature", "FP32", {1, 1}, &o_.temperature, 4);
    }
    if (perf) AddInput(&req, "return_perf_metrics", "BOOL", {1, 1}, &yes, 1);
    (*req.mutable_parameters())["triton_enable_empty_final_response"].set_bool_param(true);
    auto* call = new KServeCall(rec);
    SetDeadline(&call->ctx, o_.request_timeout_s);
    call->ctx.AddMetadata("triton_grpc_error", "true");
    // Corked: the initial metadata leaves with the request and its close in one batch (StartCall
    // then performs nothing and delivers no tag).
    call->ctx.set_initial_metadata_corked(true);
    rec->t_send = Now();
    rec->t_send_wall_ns = WallNanos();
    call->stream = impl_->kserve[conn]->PrepareAsyncModelStreamInfer(&call->ctx, &cq_);
    call->stream->StartCall(nullptr);
    call->stream->WriteLast(req, grpc::WriteOptions(), call->Tag(kWrite));
    call->stream->Read(&call->response, call->Tag(kRead));
  }

  LoadDriver::Impl* impl_;
  const Workload& workload_;
  const RunOptions& o_;
  grpc::CompletionQueue cq_;
  std::vector<double> release_;
  std::vector<int32_t> prompt_;
  pb::GenerateRequest native_request_;
  ks::ModelInferRequest kserve_request_;
  int64_t start_ns_ = 0;
  int64_t in_flight_ = 0;
  int64_t done_ = 0;
  int64_t failed_ = 0;
  double last_end_ = 0;
  uint64_t round_robin_ = 0;

 public:
  ~Runner() {
    cq_.Shutdown();
    void* tag;
    bool ok;
    while (cq_.Next(&tag, &ok)) {
    }
  }
};

}  // namespace

StatusOr<RunResult> LoadDriver::Run(const Workload& workload, const RunOptions& options) {
  if (workload.size() == 0) return InvalidArgument("the workload is empty");
  if (options.num_requests <= 0) return InvalidArgument("--num-prompts must be >= 1");
  if (options.concurrency > 0 && options.arrival.timed()) {
    return InvalidArgument(
        "--concurrency (closed loop) cannot be combined with a finite --request-rate or a ramp-up");
  }
  if (options.arrival.timed() && options.num_requests == INT64_MAX) {
    return InvalidArgument("an open-loop run with a finite rate needs a request count");
  }
  if (options.num_requests == INT64_MAX && options.duration_s <= 0 && !workload.is_trace()) {
    return InvalidArgument("an unbounded request count needs --duration");
  }
  MOE_RETURN_IF_ERROR(options.arrival.Validate());
  if (workload.has_text()) {
    // Text prompts need the server's tokenizer; checked here so a run never starts half-failing.
    MOE_ASSIGN_OR_RETURN(ModelFacts facts, GetModelInfo());
    if (!facts.has_tokenizer) {
      return InvalidArgument(
          "the workload has text prompts but the served model has no tokenizer: pass --tokenizer "
          "DIR (a model directory with tokenizer.json) or use a token dataset");
    }
  }
  Runner runner(impl_.get(), workload, options);
  return runner.Run();
}

}  // namespace moe::bench
