#include "serving/proto_convert.h"

#include <limits>

namespace moe::serving {

namespace pb = moeserve::v1;

batching::SamplingParams FromProto(const pb::SamplingParams& s) {
  batching::SamplingParams p;
  if (s.has_temperature()) p.temperature = s.temperature();
  if (s.has_top_p()) p.top_p = s.top_p();
  if (s.has_top_k()) p.top_k = s.top_k();
  if (s.has_min_p()) p.min_p = s.min_p();
  p.frequency_penalty = s.frequency_penalty();
  p.presence_penalty = s.presence_penalty();
  if (s.has_repetition_penalty()) p.repetition_penalty = s.repetition_penalty();
  if (s.has_max_tokens()) {
    p.max_tokens = static_cast<int32_t>(
        std::min<uint32_t>(s.max_tokens(), std::numeric_limits<int32_t>::max()));
  }
  p.min_tokens =
      static_cast<int32_t>(std::min<uint32_t>(s.min_tokens(), std::numeric_limits<int32_t>::max()));
  p.stop.assign(s.stop().begin(), s.stop().end());
  for (uint32_t id : s.stop_token_ids()) {
    p.stop_token_ids.push_back(
        static_cast<int32_t>(std::min<uint32_t>(id, std::numeric_limits<int32_t>::max())));
  }
  p.ignore_eos = s.ignore_eos();
  if (s.has_seed()) p.seed = s.seed();
  return p;
}

StatusOr<GenerationRequest> FromProto(const pb::GenerateRequest& r) {
  GenerationRequest g;
  g.external_id = r.request_id();
  g.input_ids.assign(r.input_ids().begin(), r.input_ids().end());
  if (!r.text().empty()) g.text = r.text();
  g.sampling = FromProto(r.sampling());
  if (r.logprobs() > 20) return InvalidArgument("logprobs must be at most 20, got ", r.logprobs());
  g.sampling.logprobs = static_cast<int32_t>(r.logprobs());
  g.priority = r.priority();
  return g;
}

pb::FinishReason ToProto(batching::FinishReason reason) {
  switch (reason) {
    case batching::FinishReason::kStop:
      return pb::STOP;
    case batching::FinishReason::kLength:
      return pb::LENGTH;
    case batching::FinishReason::kAbort:
      return pb::ABORT;
    case batching::FinishReason::kNone:
      break;
  }
  return pb::FINISH_REASON_UNSPECIFIED;
}

void AddLogprobs(const std::vector<scheduler::SampleOutput>& samples,
                 google::protobuf::RepeatedPtrField<pb::TokenLogprobs>* out) {
  for (const scheduler::SampleOutput& s : samples) {
    pb::TokenLogprobs* lp = out->Add();
    lp->set_token_id(static_cast<uint32_t>(s.token));
    lp->set_logprob(s.logprob);
    for (const scheduler::TokenLogprob& t : s.top) {
      lp->add_top_token_ids(static_cast<uint32_t>(t.token));
      lp->add_top_logprobs(t.logprob);
    }
  }
}

}  // namespace moe::serving
