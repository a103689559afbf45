#include "engine/executor.h"

#include "core/clock.h"
#include "engine/batch_builder.h"

namespace moe::engine {

Executor::Executor(Model* model, KvCache* cache, const ExecutorOptions& options)
    : model_(model),
      cache_(cache),
      options_(options),
      sampler_(model->config().vocab_size),
      logits_(static_cast<size_t>(model->runtime().max_logit_rows) * model->config().vocab_size),
      stop_tokens_(model->config().eos_token_ids) {
  batch_.block_size = model->runtime().block_size;
}

StatusOr<scheduler::StepResult> Executor::Run(const scheduler::StepPlan& plan,
                                              const scheduler::Scheduler& scheduler) {
  scheduler::StepResult result;
  result.samples.resize(plan.seqs.size());
  Stopwatch watch;
  MOE_RETURN_IF_ERROR(BuildTokenBatch(plan, scheduler, &batch_));
  result.timings.prepare_ns = watch.ElapsedNanos();
  watch.Reset();
  ForwardOpTimes op_times;
  MOE_RETURN_IF_ERROR(model_->Forward(batch_, *cache_, logits_.data(),
                                      options_.collect_routing ? &result.routing : nullptr,
                                      &op_times));
  result.timings.forward_ns = watch.ElapsedNanos();
  result.timings.expert_dispatch_ns = op_times.expert_dispatch_ns;
  result.timings.grouped_gemm_ns = op_times.grouped_gemm_ns;
  watch.Reset();
  const int vocab = model_->config().vocab_size;
  int row = 0;
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    const scheduler::ScheduledSeq& ss = plan.seqs[i];
    if (!ss.sample) continue;
    const batching::Sequence* s = scheduler.Find(ss.id);
    SampleRequest request;
    request.logits = logits_.data() + static_cast<size_t>(row++) * vocab;
    request.params = &s->request.sampling;
    request.seed = s->seed;
    request.position = s->num_tokens();
    request.prompt = std::span<const int32_t>(s->tokens.data(), s->num_prompt_tokens);
    request.output =
        std::span<const int32_t>(s->tokens.data() + s->num_prompt_tokens, s->num_generated());
    if (!s->request.sampling.ignore_eos) request.stop_tokens = stop_tokens_;
    result.samples[i] = sampler_.Sample(request);
  }
  result.timings.sample_ns = watch.ElapsedNanos();
  return result;
}

}  // namespace moe::engine
