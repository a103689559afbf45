#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <new>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>
#include <utility>

#include "absl/strings/str_join.h"

namespace moe::model {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr size_t kLengthPrefixBytes = 8;
// Same cap as the reference implementation: a larger header is corruption, not a real model.
constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;
constexpr char kIndexFileName[] = "model.safetensors.index.json";
constexpr char kMetadataKey[] = "__metadata__";
constexpr std::string_view kSuffix = ".safetensors";

// `message: strerror(error_number)`, with the code errno implies; never OK, even for errno 0.
Status ErrnoStatus(int error_number, const std::string& message) {
  if (error_number == 0) return Internal(message, ": unknown error");
  return absl::ErrnoToStatus(error_number, message);
}

// A JSON value as a non-negative integer; nullopt for negatives, floats and non-numbers.
std::optional<uint64_t> AsNonNegativeInt(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) {
    const int64_t x = v.get<int64_t>();
    if (x >= 0) return static_cast<uint64_t>(x);
  }
  return std::nullopt;
}

// product(shape) * DTypeSize(dtype), or an error when a dimension is negative or the product
// overflows int64 (elements) or size_t (bytes). `where` prefixes the message.
StatusOr<size_t> ByteSize(const std::vector<int64_t>& shape, DType dtype,
                          const std::string& where) {
  int64_t elements = 1;
  for (int64_t dim : shape) {
    if (dim < 0) return InvalidArgument(where, ": negative dimension ", dim);
    if (__builtin_mul_overflow(elements, dim, &elements)) {
      return InvalidArgument(where, ": shape [", absl::StrJoin(shape, ", "),
                             "] has more elements than fit in int64");
    }
  }
  size_t bytes = 0;
  if (__builtin_mul_overflow(static_cast<size_t>(elements), DTypeSize(dtype), &bytes)) {
    return InvalidArgument(where, ": shape [", absl::StrJoin(shape, ", "),
                           "] is too large in bytes");
  }
  return bytes;
}

std::string TensorContext(const std::string& path, const std::string& name) {
  return absl::StrCat(path, ": tensor '", name, "'");
}

// The header fields of one tensor, validated against the data buffer size.
struct ParsedEntry {
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin;
  uint64_t end;
};

StatusOr<ParsedEntry> ParseEntry(const std::string& path, const std::string& name, const json& v,
                                 uint64_t data_size) {
  const std::string where = TensorContext(path, name);
  if (!v.is_object()) return InvalidArgument(where, ": header entry is not a JSON object");
  ParsedEntry entry;

  const auto dtype_it = v.find("dtype");
  if (dtype_it == v.end()) return InvalidArgument(where, ": missing 'dtype'");
  if (!dtype_it->is_string()) return InvalidArgument(where, ": 'dtype' is not a string");
  const std::string dtype_name = dtype_it->get<std::string>();
  const std::optional<DType> dtype = ParseSafetensorsDType(dtype_name);
  if (!dtype) return InvalidArgument(where, ": unsupported dtype '", dtype_name, "'");
  entry.dtype = *dtype;

  const auto shape_it = v.find("shape");
  if (shape_it == v.end()) return InvalidArgument(where, ": missing 'shape'");
  if (!shape_it->is_array()) return InvalidArgument(where, ": 'shape' is not an array");
  for (const json& dim : *shape_it) {
    if (dim.is_number_integer() && !dim.is_number_unsigned() && dim.get<int64_t>() < 0) {
      return InvalidArgument(where, ": negative dimension ", dim.get<int64_t>(), " in 'shape'");
    }
    const std::optional<uint64_t> value = AsNonNegativeInt(dim);
    if (!value) return InvalidArgument(where, ": 'shape' holds a non-integer ", dim.dump());
    if (*value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return InvalidArgument(where, ": dimension ", *value, " in 'shape' exceeds int64");
    }
    entry.shape.push_back(static_cast<int64_t>(*value));
  }
  MOE_ASSIGN_OR_RETURN(const size_t expected_bytes, ByteSize(entry.shape, entry.dtype, where));

  const auto offsets_it = v.find("data_offsets");
  if (offsets_it == v.end()) return InvalidArgument(where, ": missing 'data_offsets'");
  if (!offsets_it->is_array() || offsets_it->size() != 2) {
    return InvalidArgument(where, ": 'data_offsets' is not a [begin, end] pair");
  }
  const std::optional<uint64_t> begin = AsNonNegativeInt((*offsets_it)[0]);
  const std::optional<uint64_t> end = AsNonNegativeInt((*offsets_it)[1]);
  if (!begin || !end) {
    return InvalidArgument(where, ": 'data_offsets' ", offsets_it->dump(),
                           " are not non-negative integers");
  }
  if (*begin > *end) {
    return InvalidArgument(where, ": 'data_offsets' begin ", *begin, " is past end ", *end);
  }
  if (*end > data_size) {
    return DataLoss(where, ": truncated: data ends at offset ", *end, " but the data buffer has ",
                    data_size, " bytes");
  }
  if (*end - *begin != expected_bytes) {
    return InvalidArgument(where, ": 'data_offsets' span ", *end - *begin, " bytes but ",
                           dtype_name, " [", absl::StrJoin(entry.shape, ", "), "] needs ",
                           expected_bytes);
  }
  entry.begin = *begin;
  entry.end = *end;
  return entry;
}

// Parses JSON text, turning parser exceptions into a Status that quotes the parser's message.
// `top_level_duplicate` receives the first key that appears twice in the top-level object, which
// the parser would otherwise silently collapse.
Status ParseJson(const char* begin, const char* end, const std::string& source, json* out,
                 std::string* top_level_duplicate) {
  std::set<std::string> seen;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key && top_level_duplicate->empty() &&
        parsed.is_string() && !seen.insert(parsed.get<std::string>()).second) {
      *top_level_duplicate = parsed.get<std::string>();
    }
    return true;
  };
  // The parser treats NUL as end of input and would silently ignore whatever follows it.
  if (const void* nul = std::memchr(begin, '\0', static_cast<size_t>(end - begin))) {
    return InvalidArgument(source, ": bad JSON: NUL byte at offset ",
                           static_cast<const char*>(nul) - begin);
  }
  try {
    *out = json::parse(begin, end, callback);
  } catch (const json::exception& e) {
    return InvalidArgument(source, ": bad JSON: ", e.what());
  } catch (const std::bad_alloc&) {
    return ResourceExhausted(source, ": out of memory parsing JSON");
  }
  return OkStatus();
}

// Whether `s` can be encoded as a JSON string (i.e. is valid UTF-8).
bool IsValidJsonString(const std::string& s) {
  try {
    (void)json(s).dump();
  } catch (const json::exception&) {
    return false;
  }
  return true;
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Adds every tensor of `file` to `by_name`, failing on a name some earlier file already holds.
Status AddTensors(const SafetensorsFile& file,
                  std::map<std::string, const TensorEntry*, std::less<>>* by_name) {
  for (const TensorEntry& t : file.tensors()) {
    const auto [it, inserted] = by_name->emplace(t.name, &t);
    if (!inserted) {
      return InvalidArgument("tensor '", t.name, "' appears in both ", it->second->file, " and ",
                             file.path());
    }
  }
  return OkStatus();
}

// Reads the "weight_map" of a shard index: tensor name -> shard file name (a bare file name in
// the index's directory).
StatusOr<std::map<std::string, std::string>> ReadWeightMap(const std::string& index_path) {
  std::ifstream in(index_path, std::ios::binary);
  if (!in) return ErrnoStatus(errno, absl::StrCat(index_path, ": cannot open"));
  std::ostringstream text_stream;
  text_stream << in.rdbuf();
  if (in.bad()) return ErrnoStatus(errno, absl::StrCat(index_path, ": read failed"));
  const std::string text = text_stream.str();

  json root;
  std::string unused_duplicate;
  MOE_RETURN_IF_ERROR(
      ParseJson(text.data(), text.data() + text.size(), index_path, &root, &unused_duplicate));
  if (!root.is_object()) return InvalidArgument(index_path, ": index is not a JSON object");
  const auto map_it = root.find("weight_map");
  if (map_it == root.end()) return InvalidArgument(index_path, ": missing 'weight_map'");
  if (!map_it->is_object()) return InvalidArgument(index_path, ": 'weight_map' is not an object");

  std::map<std::string, std::string> weight_map;
  for (const auto& [name, shard_json] : map_it->items()) {
    if (!shard_json.is_string()) {
      return InvalidArgument(index_path, ": 'weight_map' entry for tensor '", name,
                             "' is not a string");
    }
    std::string shard = shard_json.get<std::string>();
    // Shards must live in the index's own directory.
    if (shard.empty() || shard == "." || shard == ".." ||
        shard.find_first_of(std::string_view("/\0", 2)) != std::string::npos) {
      return InvalidArgument(index_path, ": tensor '", name, "' maps to shard '", shard,
                             "', which is not a plain file name in the checkpoint directory");
    }
    weight_map.emplace(name, std::move(shard));
  }
  return weight_map;
}

// Removes a partially written temporary file unless Commit() succeeded.
class TempFile {
 public:
  explicit TempFile(std::string path) : path_(std::move(path)) {}
  ~TempFile() {
    if (file_ != nullptr) std::fclose(file_);
    if (!committed_) std::remove(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  Status Create() {
    file_ = std::fopen(path_.c_str(), "wb");
    if (file_ == nullptr) return ErrnoStatus(errno, absl::StrCat(path_, ": cannot create"));
    return OkStatus();
  }

  Status Write(const void* data, size_t bytes) {
    if (bytes == 0) return OkStatus();
    if (std::fwrite(data, 1, bytes, file_) != bytes) {
      return ErrnoStatus(errno, absl::StrCat(path_, ": write failed"));
    }
    return OkStatus();
  }

  // Flushes to disk and renames over `final_path`, so readers never see a partial file.
  Status Commit(const std::string& final_path) {
    if (std::fflush(file_) != 0 || ::fsync(::fileno(file_)) != 0) {
      return ErrnoStatus(errno, absl::StrCat(path_, ": flush failed"));
    }
    const int close_result = std::fclose(file_);
    file_ = nullptr;
    if (close_result != 0) return ErrnoStatus(errno, absl::StrCat(path_, ": close failed"));
    if (std::rename(path_.c_str(), final_path.c_str()) != 0) {
      return ErrnoStatus(errno, absl::StrCat(final_path, ": cannot rename ", path_, " over it"));
    }
    committed_ = true;
    return OkStatus();
  }

 private:
  std::string path_;
  FILE* file_ = nullptr;
  bool committed_ = false;
};

}  // namespace

int64_t TensorEntry::NumElements() const {
  int64_t n = 1;
  for (int64_t dim : shape) n *= dim;
  return n;
}

std::string TensorEntry::ShapeString() const {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (file->fd_ < 0) return ErrnoStatus(errno, absl::StrCat(path, ": cannot open"));
  struct stat st;
  if (::fstat(file->fd_, &st) != 0) return ErrnoStatus(errno, absl::StrCat(path, ": cannot stat"));
  if (!S_ISREG(st.st_mode)) return InvalidArgument(path, ": not a regular file");
  const size_t size = static_cast<size_t>(st.st_size);
  if (size < kLengthPrefixBytes) {
    return DataLoss(path, ": truncated: file has ", size,
                    " bytes, fewer than the 8-byte header length");
  }
  void* mapping = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, file->fd_, 0);
  if (mapping == MAP_FAILED) return ErrnoStatus(errno, absl::StrCat(path, ": mmap failed"));
  file->mapping_ = mapping;
  file->size_ = size;
  MOE_RETURN_IF_ERROR(file->Parse());
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, size_);
  if (fd_ >= 0) ::close(fd_);
}

const TensorEntry* SafetensorsFile::Find(std::string_view name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Status SafetensorsFile::Parse() {
  const auto* bytes = static_cast<const unsigned char*>(mapping_);
  uint64_t header_len = 0;
  for (int i = static_cast<int>(kLengthPrefixBytes) - 1; i >= 0; --i) {
    header_len = (header_len << 8) | bytes[i];
  }
  if (header_len > kMaxHeaderBytes) {
    return DataLoss(path_, ": header length ", header_len, " exceeds the ", kMaxHeaderBytes,
                    "-byte limit (corrupt length prefix?)");
  }
  if (header_len > size_ - kLengthPrefixBytes) {
    return DataLoss(path_, ": truncated: header length ", header_len, " runs past the end of the ",
                    size_, "-byte file");
  }
  const char* header = reinterpret_cast<const char*>(bytes + kLengthPrefixBytes);
  const unsigned char* data = bytes + kLengthPrefixBytes + header_len;
  const uint64_t data_size = size_ - kLengthPrefixBytes - header_len;

  json root;
  std::string duplicate;
  MOE_RETURN_IF_ERROR(ParseJson(header, header + header_len, path_, &root, &duplicate));
  if (!root.is_object()) return InvalidArgument(path_, ": header is not a JSON object");
  if (!duplicate.empty()) {
    return InvalidArgument(TensorContext(path_, duplicate), ": appears twice in the header");
  }

  struct Located {
    std::string name;
    ParsedEntry entry;
  };
  std::vector<Located> located;
  for (const auto& [name, value] : root.items()) {
    if (name == kMetadataKey) {
      if (!value.is_object()) return InvalidArgument(path_, ": '__metadata__' is not an object");
      for (const auto& [key, text] : value.items()) {
        if (!text.is_string()) {
          return InvalidArgument(path_, ": '__metadata__' value for '", key, "' is not a string");
        }
        metadata_.emplace(key, text.get<std::string>());
      }
      continue;
    }
    MOE_ASSIGN_OR_RETURN(ParsedEntry entry, ParseEntry(path_, name, value, data_size));
    located.push_back({name, std::move(entry)});
  }

  std::sort(located.begin(), located.end(), [](const Located& a, const Located& b) {
    return std::tie(a.entry.begin, a.entry.end, a.name) <
           std::tie(b.entry.begin, b.entry.end, b.name);
  });
  // Empty tensors own no bytes, so they cannot overlap anything.
  const Located* last_nonempty = nullptr;
  for (const Located& cur : located) {
    if (cur.entry.begin == cur.entry.end) continue;
    if (last_nonempty != nullptr && cur.entry.begin < last_nonempty->entry.end) {
      return InvalidArgument(TensorContext(path_, cur.name), ": data [", cur.entry.begin, ", ",
                             cur.entry.end, ") overlaps tensor '", last_nonempty->name, "' [",
                             last_nonempty->entry.begin, ", ", last_nonempty->entry.end, ")");
    }
    last_nonempty = &cur;
  }

  tensors_.reserve(located.size());
  for (Located& cur : located) {
    TensorEntry t;
    t.name = std::move(cur.name);
    t.dtype = cur.entry.dtype;
    t.shape = std::move(cur.entry.shape);
    t.data = data + cur.entry.begin;
    t.num_bytes = static_cast<size_t>(cur.entry.end - cur.entry.begin);
    t.file = path_;
    index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }
  return OkStatus();
}

StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Open(const std::string& dir) {
  std::error_code ec;
  const fs::file_status dir_status = fs::status(dir, ec);
  if (!fs::exists(dir_status)) return NotFound(dir, ": checkpoint directory does not exist");
  if (!fs::is_directory(dir_status)) return InvalidArgument(dir, ": not a directory");

  std::unique_ptr<Checkpoint> checkpoint(new Checkpoint());
  const fs::path root(dir);
  const std::string index_path = (root / kIndexFileName).string();

  if (fs::exists(fs::status(index_path, ec))) {
    MOE_ASSIGN_OR_RETURN(const auto weight_map, ReadWeightMap(index_path));
    std::map<std::string, const SafetensorsFile*> shards;  // file name -> opened shard
    for (const auto& [name, shard] : weight_map) shards.emplace(shard, nullptr);
    for (auto& [shard, file_ptr] : shards) {
      const std::string shard_path = (root / shard).string();
      if (!fs::exists(fs::status(shard_path, ec))) {
        return NotFound(index_path, ": shard '", shard, "' does not exist (", shard_path, ")");
      }
      MOE_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(shard_path));
      file_ptr = file.get();
      MOE_RETURN_IF_ERROR(AddTensors(*file, &checkpoint->by_name_));
      checkpoint->files_.push_back(std::move(file));
    }
    // Names are unique across shards now, so each tensor has exactly one owning shard.
    for (const auto& [name, entry] : checkpoint->by_name_) {
      const auto it = weight_map.find(name);
      if (it == weight_map.end()) {
        return InvalidArgument(TensorContext(entry->file, name), ": not listed in ", index_path);
      }
      if (shards.at(it->second)->Find(name) != entry) {
        return InvalidArgument(TensorContext(entry->file, name), ": ", index_path,
                               " maps it to shard '", it->second, "' instead");
      }
    }
    for (const auto& [name, shard] : weight_map) {
      if (shards.at(shard)->Find(name) == nullptr) {
        return InvalidArgument(index_path, ": tensor '", name, "' is mapped to shard '", shard,
                               "', which does not contain it");
      }
    }
    return checkpoint;
  }

  std::vector<std::string> paths;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string file_name = it->path().filename().string();
    std::error_code type_ec;
    if (file_name.size() > kSuffix.size() && EndsWith(file_name, kSuffix) &&
        it->is_regular_file(type_ec)) {
      paths.push_back(it->path().string());
    }
  }
  if (ec) return ErrnoStatus(ec.value(), absl::StrCat(dir, ": cannot list directory"));
  if (paths.empty()) return NotFound(dir, ": no *.safetensors files and no ", kIndexFileName);
  std::sort(paths.begin(), paths.end());
  for (const std::string& path : paths) {
    MOE_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path));
    MOE_RETURN_IF_ERROR(AddTensors(*file, &checkpoint->by_name_));
    checkpoint->files_.push_back(std::move(file));
  }
  return checkpoint;
}

const TensorEntry* Checkpoint::Find(std::string_view name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

std::vector<std::string> Checkpoint::Names() const {
  std::vector<std::string> names;
  names.reserve(by_name_.size());
  for (const auto& [name, entry] : by_name_) names.push_back(name);
  return names;
}

size_t Checkpoint::TotalBytes() const {
  size_t total = 0;
  for (const auto& [name, entry] : by_name_) total += entry->num_bytes;
  return total;
}

Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                        const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [key, value] : metadata) {
      if (!IsValidJsonString(key) || !IsValidJsonString(value)) {
        return InvalidArgument(path, ": metadata entry '", key, "' is not valid UTF-8");
      }
      meta[key] = value;
    }
    header[kMetadataKey] = std::move(meta);
  }
  std::vector<size_t> sizes;
  sizes.reserve(tensors.size());
  std::set<std::string_view> seen;
  size_t offset = 0;
  size_t max_bytes = 0;
  for (const TensorToWrite& t : tensors) {
    const std::string where = TensorContext(path, t.name);
    if (t.name == kMetadataKey) return InvalidArgument(where, ": reserved name");
    if (!seen.insert(t.name).second) return InvalidArgument(where, ": listed twice");
    if (!IsValidJsonString(t.name)) return InvalidArgument(where, ": name is not valid UTF-8");
    MOE_ASSIGN_OR_RETURN(const size_t bytes, ByteSize(t.shape, t.dtype, where));
    if (bytes > 0 && !t.fill) return InvalidArgument(where, ": no fill callback");
    size_t end = 0;
    if (__builtin_add_overflow(offset, bytes, &end)) {
      return InvalidArgument(where, ": total data size overflows");
    }
    nlohmann::ordered_json entry = nlohmann::ordered_json::object();
    entry["dtype"] = std::string(DTypeName(t.dtype));
    entry["shape"] = nlohmann::ordered_json::array();
    for (int64_t dim : t.shape) entry["shape"].push_back(dim);
    entry["data_offsets"] = nlohmann::ordered_json::array({offset, end});
    header[t.name] = std::move(entry);
    sizes.push_back(bytes);
    max_bytes = std::max(max_bytes, bytes);
    offset = end;
  }

  std::string header_text;
  try {
    header_text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgument(path, ": cannot encode header: ", e.what());
  }
  header_text.append((8 - header_text.size() % 8) % 8, ' ');

  unsigned char length_prefix[kLengthPrefixBytes];
  uint64_t header_len = header_text.size();
  for (unsigned char& byte : length_prefix) {
    byte = static_cast<unsigned char>(header_len & 0xff);
    header_len >>= 8;
  }

  // One buffer sized for the largest tensor, reused; at least one byte so `fill` never gets null.
  std::unique_ptr<unsigned char[]> buffer(
      new (std::nothrow) unsigned char[std::max<size_t>(max_bytes, 1)]);
  if (buffer == nullptr) {
    return ResourceExhausted(path, ": cannot allocate a ", max_bytes, "-byte staging buffer");
  }

  TempFile tmp(path + ".tmp");
  MOE_RETURN_IF_ERROR(tmp.Create());
  MOE_RETURN_IF_ERROR(tmp.Write(length_prefix, sizeof(length_prefix)));
  MOE_RETURN_IF_ERROR(tmp.Write(header_text.data(), header_text.size()));
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (tensors[i].fill) tensors[i].fill(buffer.get());
    MOE_RETURN_IF_ERROR(tmp.Write(buffer.get(), sizes[i]));
  }
  return tmp.Commit(path);
}

}  // namespace moe::model
