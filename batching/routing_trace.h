// RoutingTrace: the experts each token was routed to, per MoE layer, in one forward pass. Feeds
// expert-load statistics, the routing predictor and expert-aware regrouping.
#pragma once

#include <cstdint>
#include <vector>

namespace moe::batching {

struct RoutingTrace {
  int num_tokens = 0;
  int top_k = 0;
  std::vector<int> moe_layers;      // model layer index of each traced layer
  std::vector<int32_t> expert_ids;  // [moe_layers.size(), num_tokens, top_k]; -1 = none
};

}  // namespace moe::batching
