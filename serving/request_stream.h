// RequestStream: one request's outputs on their way from the engine thread to an RPC writer.
// The engine thread appends (OnOutput) and wakes the writer when it is idle; the writer takes
// everything pending as one batch per write, so tokens produced while a write is in flight
// coalesce into the next message. One write in flight, never a blocked thread.
#pragma once

#include <functional>
#include <mutex>
#include <vector>

#include "engine/request_output.h"

namespace moe::serving {

struct StreamBatch {
  std::vector<int32_t> tokens;
  std::vector<scheduler::SampleOutput> logprobs;
  int cached_tokens = 0;  // latest known prompt tokens served from the prefix cache
  bool finished = false;
  engine::RequestOutput final;  // valid when finished
};

class RequestStream final : public engine::OutputSink {
 public:
  // `wake` is called (outside the lock, on the engine thread) when output arrives and the writer
  // is idle; it must start a write by calling TakeOrIdle.
  explicit RequestStream(std::function<void()> wake) : wake_(std::move(wake)) {}

  void OnOutput(engine::RequestOutput output) override;

  // Writer side. Moves everything pending into `batch` and returns true (the writer stays busy),
  // or, when nothing is pending, marks the writer idle and returns false.
  bool TakeOrIdle(StreamBatch* batch);
  // Marks the writer busy (before a first write it starts itself).
  void MarkBusy();
  // The writer is gone: later outputs are dropped.
  void Detach();
  bool finished_seen() const;

 private:
  mutable std::mutex mu_;
  std::function<void()> wake_;
  StreamBatch pending_;
  int cached_tokens_ = 0;
  bool has_pending_ = false;
  bool busy_ = false;
  bool detached_ = false;
  bool finished_seen_ = false;
};

}  // namespace moe::serving
