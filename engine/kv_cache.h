// KvCache: the paged key/value memory of every layer, in backend memory. Which blocks belong to
// which sequence is decided elsewhere (the scheduler's block pool); this only owns the storage.
// Layout per layer: K and V each [num_blocks * block_size, kv_heads * head_dim].
#pragma once

#include <memory>
#include <vector>

#include "core/dtype.h"
#include "engine/backend.h"

namespace moe::engine {

struct KvCacheConfig {
  int num_layers = 0;
  int num_blocks = 0;
  int block_size = 16;
  int kv_heads = 0;
  int head_dim = 0;
  DType dtype = DType::kBF16;

  size_t BytesPerBlock() const;  // all layers, K and V
};

class KvCache {
 public:
  static StatusOr<std::unique_ptr<KvCache>> Create(Backend* backend, const KvCacheConfig& config);

  const KvCacheConfig& config() const { return config_; }
  KvCacheView Layer(int layer) const;
  size_t TotalBytes() const;

 private:
  KvCacheConfig config_;
  std::vector<std::unique_ptr<Buffer>> k_;  // [num_layers]
  std::vector<std::unique_ptr<Buffer>> v_;  // [num_layers]
};

}  // namespace moe::engine
