#include "serving/request_log_record.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace moe::serving {

namespace {

// A minimal, fast JSON object writer for flat log lines: strings are escaped and made valid
// UTF-8 (invalid bytes become U+FFFD) in one pass with a fast path for plain ASCII, numbers are
// formatted with to_chars (no locale), non-finite doubles become null. Keys are trusted
// constants; client-controlled keys go through StringMap.
// Writes "2026-01-02T03:04:05.678Z" (24 bytes) into `out`; returns the length. Lines come in
// bursts within the same second: the date and time are formatted once per second and thread.
size_t FormatIso(int64_t wall_ns, char* out) {
  thread_local int64_t cached_second = -1;
  thread_local char cached[32];
  thread_local size_t cached_len = 0;
  const int64_t second = wall_ns / 1000000000;
  if (second != cached_second) {
    const time_t secs = static_cast<time_t>(second);
    struct tm tm;
    gmtime_r(&secs, &tm);
    const int n =
        std::snprintf(cached, sizeof(cached), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    cached_len = n > 0 ? std::min(static_cast<size_t>(n), sizeof(cached) - 1) : 0;
    cached_second = second;
  }
  const int ms = static_cast<int>((wall_ns / 1000000) % 1000);
  std::memcpy(out, cached, cached_len);
  char* p = out + cached_len;
  *p++ = '.';
  *p++ = static_cast<char>('0' + ms / 100);
  *p++ = static_cast<char>('0' + ms / 10 % 10);
  *p++ = static_cast<char>('0' + ms % 10);
  *p++ = 'Z';
  return static_cast<size_t>(p - out);
}

class JsonLine {
 public:
  JsonLine() : out_(2048, '\0') { Put('{'); }

  JsonLine& Key(std::string_view key) {
    Ensure(key.size() + 4);
    if (!first_) Put(',');
    first_ = false;
    Put('"');
    Put(key.data(), key.size());
    Put('"');
    Put(':');
    return *this;
  }
  // {"k":"v",...} with client-controlled keys and values.
  void StringMap(const std::vector<std::pair<std::string, std::string>>& map) {
    Ensure(2);
    Put('{');
    for (size_t i = 0; i < map.size(); ++i) {
      if (i > 0) {
        Ensure(1);
        Put(',');
      }
      AppendString(map[i].first);
      Ensure(1);
      Put(':');
      AppendString(map[i].second);
    }
    Ensure(1);
    Put('}');
  }
  void String(std::string_view v) { AppendString(v); }
  // "2026-01-02T03:04:05.678Z"
  void Timestamp(int64_t wall_ns) {
    char buf[40];
    const size_t n = FormatIso(wall_ns, buf);
    Ensure(n + 2);
    Put('"');
    Put(buf, n);
    Put('"');
  }
  void Int(int64_t v) {
    Ensure(24);
    if (v < 0) {
      Put('-');
      PutUnsigned(static_cast<uint64_t>(0) - static_cast<uint64_t>(v));
    } else {
      PutUnsigned(static_cast<uint64_t>(v));
    }
  }
  void Uint(uint64_t v) {
    Ensure(24);
    PutUnsigned(v);
  }
  // Fixed-point with `decimals` digits (0..6).
  void Double(double v, int decimals) {
    static constexpr int64_t kScale[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    if (!std::isfinite(v)) {
      Null();
      return;
    }
    const double scaled = v * static_cast<double>(kScale[decimals]);
    if (std::fabs(scaled) >= 9e15) {
      Ensure(400);
      pos_ = static_cast<size_t>(
          std::to_chars(At(), At() + 400, v, std::chars_format::fixed, decimals).ptr - out_.data());
      return;
    }
    int64_t units = std::llround(scaled);
    Ensure(32);
    if (units < 0) {
      Put('-');
      units = -units;
    }
    Int(units / kScale[decimals]);
    if (decimals == 0) return;
    Ensure(8);
    Put('.');
    int64_t rest = units % kScale[decimals];
    for (int i = decimals - 1; i >= 0; --i) {
      out_[pos_ + static_cast<size_t>(i)] = static_cast<char>('0' + rest % 10);
      rest /= 10;
    }
    pos_ += static_cast<size_t>(decimals);
  }
  // Shortest round-trip form (sampling parameters).
  void Float(double v) {
    if (!std::isfinite(v)) {
      Null();
      return;
    }
    Ensure(32);
    pos_ = static_cast<size_t>(std::to_chars(At(), At() + 32, v).ptr - out_.data());
  }
  void Bool(bool v) { Raw(v ? std::string_view("true") : std::string_view("false")); }
  void Null() { Raw("null"); }
  void OptMs(const std::optional<double>& v) {
    if (v) {
      Double(*v, 3);
    } else {
      Null();
    }
  }
  void Raw(std::string_view raw) {
    Ensure(raw.size());
    Put(raw.data(), raw.size());
  }
  std::string Finish() {
    Ensure(1);
    Put('}');
    out_.resize(pos_);
    return std::move(out_);
  }

 private:
  char* At() { return out_.data() + pos_; }
  void Ensure(size_t n) {
    if (pos_ + n > out_.size()) [[unlikely]]
      Grow(n);
  }
  [[gnu::noinline]] void Grow(size_t n) { out_.resize(std::max(out_.size() * 2, pos_ + n)); }
  // Decimal digits of v, two at a time.
  void PutUnsigned(uint64_t v) {
    static constexpr char kPairs[] =
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
        "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
        "8081828384858687888990919293949596979899";
    char buf[24];
    char* end = buf + sizeof(buf);
    char* p = end;
    while (v >= 100) {
      const unsigned i = static_cast<unsigned>(v % 100) * 2;
      v /= 100;
      *--p = kPairs[i + 1];
      *--p = kPairs[i];
    }
    if (v >= 10) {
      const unsigned i = static_cast<unsigned>(v) * 2;
      *--p = kPairs[i + 1];
      *--p = kPairs[i];
    } else {
      *--p = static_cast<char>('0' + v);
    }
    Put(p, static_cast<size_t>(end - p));
  }
  // Callers Ensure() room first.
  void Put(char c) { out_[pos_++] = c; }
  void Put(const char* s, size_t n) {
    std::memcpy(At(), s, n);
    pos_ += n;
  }

  // Length of the valid UTF-8 sequence starting at s[i] (2..4), or 0.
  static size_t Utf8Length(std::string_view s, size_t i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const size_t len = (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (len == 0 || i + len > s.size()) return 0;
    for (size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return 0;
    }
    return len;
  }

  void AppendString(std::string_view s) {
    Ensure(s.size() * 6 + 2);  // the worst case: every byte escaped as \u00XX
    Put('"');
    size_t run = 0;  // start of the pending run of bytes copied as they are
    size_t i = 0;
    while (i < s.size()) {
      const unsigned char c = static_cast<unsigned char>(s[i]);
      if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
        ++i;
        continue;
      }
      if (c >= 0x80) {
        const size_t len = Utf8Length(s, i);
        if (len > 0) {
          i += len;
          continue;
        }
      }
      Put(s.data() + run, i - run);
      switch (c) {
        case '"':
          Put("\\\"", 2);
          break;
        case '\\':
          Put("\\\\", 2);
          break;
        case '\n':
          Put("\\n", 2);
          break;
        case '\r':
          Put("\\r", 2);
          break;
        case '\t':
          Put("\\t", 2);
          break;
        default:
          if (c < 0x20) {
            static constexpr char kHex[] = "0123456789abcdef";
            const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
            Put(esc, 6);
          } else {
            Put("\xef\xbf\xbd", 3);  // an invalid UTF-8 byte (U+FFFD: 3 <= 6 bytes)
          }
      }
      ++i;
      run = i;
    }
    Put(s.data() + run, s.size() - run);
    Put('"');
  }

  std::string out_;
  size_t pos_ = 0;
  bool first_ = true;
};

double Ms(int64_t ns) { return static_cast<double>(ns) * 1e-6; }

}  // namespace

std::string_view ApiLogName(ApiKind api) {
  switch (api) {
    case ApiKind::kNative:
      return "native";
    case ApiKind::kKServeUnary:
      return "kserve_unary";
    case ApiKind::kKServeStream:
      return "kserve_stream";
  }
  return "native";
}

std::string_view ApiLabel(ApiKind api) { return api == ApiKind::kNative ? "native" : "kserve"; }

void RequestRecord::NoteFinal(const engine::RequestOutput& out) {
  if (out.id != 0) engine_id = out.id;
  if (!stopped_by_text) {
    finish_reason = out.finish_reason;
    matched_stop_token = out.matched_stop_token;
    matched_stop_string = out.matched_stop_string;
  }
  prompt_tokens = out.prompt_tokens;
  cached_tokens = out.cached_tokens;
  generated_tokens = out.completion_tokens;
  if (!stopped_by_text) completion_tokens = out.completion_tokens;
  if (out.arrival_time_ns != 0) arrival_ns = out.arrival_time_ns;
  first_scheduled_ns = out.first_scheduled_time_ns;
  first_token_ns = out.first_token_time_ns;
  last_token_ns = out.last_token_time_ns;
  finished_ns = out.finished_time_ns;
  max_itl_ns = out.max_itl_ns;
  num_preemptions = out.num_preemptions;
  engine_steps = out.num_steps;
  batch_size_at_first_token = out.batch_size_at_first_token;
  if (out.seed != 0) seed = out.seed;
}

void RequestRecord::NoteSampling(const batching::SamplingParams& params) {
  sampling.temperature = params.temperature;
  sampling.top_p = params.top_p;
  sampling.top_k = params.top_k;
  sampling.min_p = params.min_p;
  sampling.repetition_penalty = params.repetition_penalty;
  sampling.presence_penalty = params.presence_penalty;
  sampling.frequency_penalty = params.frequency_penalty;
  sampling.max_tokens = params.max_tokens;
  sampling.min_tokens = params.min_tokens;
  sampling.ignore_eos = params.ignore_eos;
  sampling.seed = params.seed;
  sampling.logprobs = params.logprobs;
  if (params.seed) seed = *params.seed;
}

std::string_view RequestRecord::finish_reason_name() const {
  if (finish_reason == batching::FinishReason::kNone) return "";
  return batching::FinishReasonName(finish_reason);
}

RequestDurations ComputeDurations(const RequestRecord& r) {
  RequestDurations d;
  if (r.arrival_ns > 0 && r.received_ns > 0) d.validation_ms = Ms(r.arrival_ns - r.received_ns);
  if (r.arrival_ns == 0) return d;
  // The engine's end; a request whose final output never arrived ends with its call.
  int64_t end = r.finished_ns;
  if (end == 0) end = r.ended_ns;
  if (end < r.arrival_ns) end = r.arrival_ns;
  const int64_t scheduled = r.first_scheduled_ns > 0 ? r.first_scheduled_ns : end;
  const int64_t first = r.first_token_ns > 0 ? r.first_token_ns : end;
  d.queue_ms = Ms(scheduled - r.arrival_ns);
  d.prefill_ms = r.first_scheduled_ns > 0 ? Ms(first - scheduled) : 0;
  d.decode_ms = r.first_token_ns > 0 ? Ms(end - first) : 0;
  d.e2e_ms = Ms(end - r.arrival_ns);
  if (r.first_token_ns > 0) d.ttft_ms = Ms(r.first_token_ns - r.arrival_ns);
  if (r.generated_tokens > 1 && r.first_token_ns > 0 && r.last_token_ns >= r.first_token_ns) {
    d.tpot_ms = Ms(r.last_token_ns - r.first_token_ns) / (r.generated_tokens - 1);
  }
  d.max_itl_ms = Ms(r.max_itl_ns);
  return d;
}

std::string IsoTimestamp(int64_t wall_ns) {
  char buf[40];
  return std::string(buf, FormatIso(wall_ns, buf));
}

std::string RequestFinishedJson(const RequestRecord& r, const RequestDurations& d) {
  JsonLine j;
  j.Key("ts").Timestamp(r.ended_ns);
  j.Key("level").String(r.grpc_code == 0 ? "info" : "warning");
  j.Key("event").String("request_finished");
  j.Key("request_id").String(r.request_id);
  j.Key("engine_id").Uint(r.engine_id);
  j.Key("client_tags").StringMap(r.tags);
  j.Key("peer").String(r.peer);
  j.Key("api").String(ApiLogName(r.api));
  j.Key("model").String(r.model);
  j.Key("grpc_code").Int(r.grpc_code);
  j.Key("error_msg").String(r.error_msg);
  j.Key("finish_reason").String(r.finish_reason_name());
  j.Key("matched_stop");
  if (r.matched_stop_token >= 0) {
    j.Int(r.matched_stop_token);
  } else if (!r.matched_stop_string.empty()) {
    j.String(r.matched_stop_string);
  } else {
    j.Null();
  }
  j.Key("prompt_tokens").Int(r.prompt_tokens);
  j.Key("cached_tokens").Int(r.cached_tokens);
  j.Key("completion_tokens").Int(r.completion_tokens);
  j.Key("max_tokens");
  if (r.sampling.max_tokens) {
    j.Int(*r.sampling.max_tokens);
  } else {
    j.Null();
  }
  j.Key("min_tokens").Int(r.sampling.min_tokens);
  j.Key("ignore_eos").Bool(r.sampling.ignore_eos);
  j.Key("stream").Bool(r.stream);
  j.Key("temperature").Float(r.sampling.temperature);
  j.Key("top_p").Float(r.sampling.top_p);
  j.Key("top_k").Int(r.sampling.top_k);
  j.Key("min_p").Float(r.sampling.min_p);
  j.Key("repetition_penalty").Float(r.sampling.repetition_penalty);
  j.Key("presence_penalty").Float(r.sampling.presence_penalty);
  j.Key("frequency_penalty").Float(r.sampling.frequency_penalty);
  j.Key("logprobs").Int(r.sampling.logprobs);
  j.Key("seed");
  if (r.seed != 0) {
    j.Uint(r.seed);
  } else {
    j.Null();
  }
  j.Key("priority").Int(r.priority);
  j.Key("deadline_ms");
  if (r.deadline_ms >= 0) {
    j.Int(r.deadline_ms);
  } else {
    j.Null();
  }
  j.Key("received_ns").Int(r.received_ns);
  j.Key("arrival_ns").Int(r.arrival_ns);
  j.Key("queued_ns").Int(r.arrival_ns);
  j.Key("first_scheduled_ns").Int(r.first_scheduled_ns);
  j.Key("first_token_ns").Int(r.first_token_ns);
  j.Key("last_token_ns").Int(r.last_token_ns);
  j.Key("finished_ns").Int(r.finished_ns);
  j.Key("ended_ns").Int(r.ended_ns);
  j.Key("validation_ms").Double(d.validation_ms, 3);
  j.Key("queue_ms").Double(d.queue_ms, 3);
  j.Key("prefill_ms").Double(d.prefill_ms, 3);
  j.Key("ttft_ms").OptMs(d.ttft_ms);
  j.Key("decode_ms").Double(d.decode_ms, 3);
  j.Key("e2e_ms").Double(d.e2e_ms, 3);
  j.Key("tpot_ms").OptMs(d.tpot_ms);
  j.Key("max_itl_ms").Double(d.max_itl_ms, 3);
  j.Key("num_chunks").Int(r.num_chunks);
  j.Key("num_preemptions").Int(r.num_preemptions);
  j.Key("kv_blocks_reused").Int(r.kv_block_size > 0 ? r.cached_tokens / r.kv_block_size : 0);
  j.Key("engine_steps").Int(r.engine_steps);
  j.Key("batch_size_at_first_token").Int(r.batch_size_at_first_token);
  // Speculative decoding does not exist yet: no acceptance fields.
  if (r.prompt_text) j.Key("prompt").String(*r.prompt_text);
  if (!r.prompt_ids.empty()) {
    j.Key("prompt_ids");
    j.Raw("[");
    for (size_t i = 0; i < r.prompt_ids.size(); ++i) {
      if (i > 0) j.Raw(",");
      j.Int(r.prompt_ids[i]);
    }
    j.Raw("]");
  }
  return j.Finish();
}

std::string EngineStatsJson(const EngineStatsRecord& s) {
  JsonLine j;
  j.Key("ts").Timestamp(s.wall_ns);
  j.Key("level").String("info");
  j.Key("event").String("engine_stats");
  j.Key("wall_ns").Int(s.wall_ns);
  j.Key("interval_s").Double(s.interval_s, 3);
  j.Key("running").Int(s.num_running);
  j.Key("waiting").Int(s.num_waiting);
  j.Key("waiting_tokens").Int(s.num_waiting_tokens);
  j.Key("kv_usage").Double(s.kv_usage, 4);
  j.Key("prompt_tokens_per_s").Double(s.prompt_tokens_per_s, 2);
  j.Key("generation_tokens_per_s").Double(s.generation_tokens_per_s, 2);
  j.Key("prefix_cache_hit_rate");
  if (s.prefix_cache_hit_rate) {
    j.Double(*s.prefix_cache_hit_rate, 4);
  } else {
    j.Null();
  }
  j.Key("prefix_cache_hit_rate_total").Double(s.prefix_cache_hit_rate_total, 4);
  j.Key("preemptions").Int(s.preemptions);
  j.Key("total_preemptions").Int(s.total_preemptions);
  j.Key("steps").Int(s.steps);
  j.Key("steps_prefill").Int(s.steps_prefill);
  j.Key("steps_decode").Int(s.steps_decode);
  j.Key("steps_mixed").Int(s.steps_mixed);
  j.Key("mean_batch_size").Double(s.mean_batch_size, 2);
  j.Key("max_batch_size").Int(s.max_batch_size);
  j.Key("mean_step_ms").Double(s.mean_step_ms, 3);
  j.Key("requests_finished").Int(s.requests_finished);
  j.Key("streams_open").Int(s.streams_open);
  j.Key("distinct_experts_per_step");
  if (s.distinct_experts_per_step) {
    j.Double(*s.distinct_experts_per_step, 2);
  } else {
    j.Null();
  }
  j.Key("expert_load_imbalance");
  if (s.expert_load_imbalance) {
    j.Double(*s.expert_load_imbalance, 3);
  } else {
    j.Null();
  }
  if (!s.expert_tokens.empty()) {
    j.Key("expert_tokens");
    j.Raw("[");
    for (size_t l = 0; l < s.expert_tokens.size(); ++l) {
      if (l > 0) j.Raw(",");
      j.Raw("[");
      for (size_t e = 0; e < s.expert_tokens[l].size(); ++e) {
        if (e > 0) j.Raw(",");
        j.Int(s.expert_tokens[l][e]);
      }
      j.Raw("]");
    }
    j.Raw("]");
  }
  return j.Finish();
}

}  // namespace moe::serving
