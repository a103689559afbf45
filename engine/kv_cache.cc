#include "engine/kv_cache.h"

namespace moe::engine {

size_t KvCacheConfig::BytesPerBlock() const {
  return static_cast<size_t>(num_layers) * 2 * block_size * kv_heads * head_dim * DTypeSize(dtype);
}

StatusOr<std::unique_ptr<KvCache>> KvCache::Create(Backend* backend, const KvCacheConfig& config) {
  if (config.num_blocks <= 0 || config.block_size <= 0 || config.num_layers <= 0) {
    return InvalidArgument("KV cache: num_blocks, block_size and num_layers must be positive");
  }
  auto cache = std::unique_ptr<KvCache>(new KvCache());
  cache->config_ = config;
  const size_t layer_bytes = static_cast<size_t>(config.num_blocks) * config.block_size *
                             config.kv_heads * config.head_dim * DTypeSize(config.dtype);
  for (int l = 0; l < config.num_layers; ++l) {
    MOE_ASSIGN_OR_RETURN(auto k, backend->Allocate(layer_bytes));
    MOE_ASSIGN_OR_RETURN(auto v, backend->Allocate(layer_bytes));
    // Zeroed so that no stale value can ever be read as a key; reads are masked anyway.
    MOE_RETURN_IF_ERROR(backend->Fill(k->data(), 0, layer_bytes, Stream{}));
    MOE_RETURN_IF_ERROR(backend->Fill(v->data(), 0, layer_bytes, Stream{}));
    cache->k_.push_back(std::move(k));
    cache->v_.push_back(std::move(v));
  }
  return cache;
}

KvCacheView KvCache::Layer(int layer) const {
  const int64_t slots = static_cast<int64_t>(config_.num_blocks) * config_.block_size;
  const int64_t width = static_cast<int64_t>(config_.kv_heads) * config_.head_dim;
  return KvCacheView{TensorView::Contiguous(k_[layer]->data(), config_.dtype, slots, width),
                     TensorView::Contiguous(v_[layer]->data(), config_.dtype, slots, width),
                     config_.block_size};
}

size_t KvCache::TotalBytes() const {
  return static_cast<size_t>(config_.num_blocks) * config_.BytesPerBlock();
}

}  // namespace moe::engine
