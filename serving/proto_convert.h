// Conversions between moeserve.v1 messages and engine/gateway types. Errors name the API field.
#pragma once

#include <vector>

#include "moeserve/v1/moeserve.pb.h"
#include "serving/request_gateway.h"

namespace moe::serving {

StatusOr<GenerationRequest> FromProto(const moeserve::v1::GenerateRequest& request);
batching::SamplingParams FromProto(const moeserve::v1::SamplingParams& sampling);
moeserve::v1::FinishReason ToProto(batching::FinishReason reason);
void AddLogprobs(const std::vector<scheduler::SampleOutput>& samples,
                 google::protobuf::RepeatedPtrField<moeserve::v1::TokenLogprobs>* out);

}  // namespace moe::serving
