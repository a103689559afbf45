// A JSON value paired with its key path ("model.merges[12]"), so that every load error of a
// tokenizer file names the key that is wrong: "tokenizer.json: key 'normalizer.type': unsupported
// value \"Foo\"".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace moe::model {

class JsonField {
 public:
  // `source` names the file in messages; `value` must outlive the field and its children.
  JsonField(const nlohmann::json& value, std::string source, std::string path = "")
      : value_(&value), source_(std::move(source)), path_(std::move(path)) {}

  const nlohmann::json& value() const { return *value_; }
  const std::string& path() const { return path_; }
  bool is_null() const { return value_->is_null(); }

  // True when this is an object holding `key` with a non-null value.
  bool Has(std::string_view key) const;
  // The member `key` (a null field when missing) and the element `i` of an array.
  JsonField Child(std::string_view key) const;
  JsonField At(size_t i) const;

  // Typed members. The *Or forms return `fallback` when the key is missing or null.
  StatusOr<std::string> String(std::string_view key) const;
  StatusOr<std::string> StringOr(std::string_view key, std::string fallback) const;
  StatusOr<bool> BoolOr(std::string_view key, bool fallback) const;
  StatusOr<int64_t> Int(std::string_view key) const;

  // Type checks of this value.
  Status ExpectObject() const;
  Status ExpectArray() const;
  StatusOr<std::string> AsString() const;
  StatusOr<int64_t> AsInt() const;

  // InvalidArgument "<source>: key '<path>': <what>".
  Status Error(std::string_view what) const;

 private:
  const nlohmann::json* value_;
  std::string source_;
  std::string path_;
};

}  // namespace moe::model
