// Reading safetensors checkpoints: one file, or a sharded set described by
// `model.safetensors.index.json`. Files are memory-mapped read-only; tensor data is handed out as
// pointers into the mapping and stays valid while the owning object lives.
//
// Every malformed input is a Status naming the file (and the tensor where there is one):
// truncated file, header length past the end, bad JSON, unknown dtype, bad shape, data offsets
// out of range or overlapping, byte size not matching dtype x shape, shard index naming a missing
// file or a tensor its shard lacks, the same tensor in two shards. Nothing here reads out of
// bounds on any input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"

namespace moe::model {

// One tensor of a checkpoint.
struct TensorEntry {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // row-major; [] is a scalar
  const void* data = nullptr;  // points into the file mapping
  size_t num_bytes = 0;        // = product(shape) * DTypeSize(dtype)
  std::string file;            // path of the file holding it (for error messages)

  int64_t NumElements() const;
  std::string ShapeString() const;  // "[2048, 768]"
};

// A single memory-mapped .safetensors file.
class SafetensorsFile {
 public:
  // Opens, maps and validates `path`.
  static StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // Tensors in file order (ascending data offset).
  const std::vector<TensorEntry>& tensors() const { return tensors_; }
  // nullptr when absent.
  const TensorEntry* Find(std::string_view name) const;
  // The "__metadata__" string map (empty when absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  size_t file_size() const { return size_; }

 private:
  SafetensorsFile() = default;
  Status Parse();

  std::string path_;
  int fd_ = -1;
  void* mapping_ = nullptr;
  size_t size_ = 0;
  std::vector<TensorEntry> tensors_;
  std::map<std::string, size_t, std::less<>> index_;  // name -> position in tensors_
  std::map<std::string, std::string> metadata_;
};

// All tensors of a model directory: `model.safetensors.index.json` with its shards when present,
// otherwise every `*.safetensors` file in the directory (usually one `model.safetensors`).
class Checkpoint {
 public:
  static StatusOr<std::unique_ptr<Checkpoint>> Open(const std::string& dir);

  // nullptr when absent.
  const TensorEntry* Find(std::string_view name) const;
  // All tensor names, sorted.
  std::vector<std::string> Names() const;
  size_t num_tensors() const { return by_name_.size(); }
  // Total bytes of tensor data across all files.
  size_t TotalBytes() const;

 private:
  Checkpoint() = default;

  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorEntry*, std::less<>> by_name_;
};

// Writes a safetensors file: a header listing every tensor, then the data in the given order.
// Each tensor's bytes come from a callback so multi-GiB files are written without holding them in
// memory. The header is padded with spaces to a multiple of 8 bytes, as the reference
// implementation does.
struct TensorToWrite {
  std::string name;
  DType dtype = DType::kBF16;
  std::vector<int64_t> shape;
  // Fills `out` (exactly product(shape) * DTypeSize(dtype) bytes). Called once, in order.
  std::function<void(void* out)> fill;
};

Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                        const std::map<std::string, std::string>& metadata = {});

}  // namespace moe::model
