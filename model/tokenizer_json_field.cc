#include "model/tokenizer_json_field.h"

namespace moe::model {
namespace {

const nlohmann::json& NullJson() {
  static const nlohmann::json* null_json = new nlohmann::json(nullptr);
  return *null_json;
}

std::string TypeName(const nlohmann::json& v) { return v.type_name(); }

}  // namespace

bool JsonField::Has(std::string_view key) const {
  if (!value_->is_object()) return false;
  auto it = value_->find(key);
  return it != value_->end() && !it->is_null();
}

JsonField JsonField::Child(std::string_view key) const {
  std::string path =
      path_.empty() ? std::string(key) : absl::StrCat(path_, ".", internal::StrArg(key));
  if (!value_->is_object()) return JsonField(NullJson(), source_, std::move(path));
  auto it = value_->find(key);
  if (it == value_->end()) return JsonField(NullJson(), source_, std::move(path));
  return JsonField(*it, source_, std::move(path));
}

JsonField JsonField::At(size_t i) const {
  std::string path = absl::StrCat(path_, "[", i, "]");
  if (!value_->is_array() || i >= value_->size()) return JsonField(NullJson(), source_, path);
  return JsonField((*value_)[i], source_, std::move(path));
}

StatusOr<std::string> JsonField::String(std::string_view key) const {
  const JsonField f = Child(key);
  if (f.is_null()) return f.Error("missing required string");
  return f.AsString();
}

StatusOr<std::string> JsonField::StringOr(std::string_view key, std::string fallback) const {
  const JsonField f = Child(key);
  if (f.is_null()) return fallback;
  return f.AsString();
}

StatusOr<bool> JsonField::BoolOr(std::string_view key, bool fallback) const {
  const JsonField f = Child(key);
  if (f.is_null()) return fallback;
  if (!f.value().is_boolean()) return f.Error("expected true or false, got " + TypeName(f.value()));
  return f.value().get<bool>();
}

StatusOr<int64_t> JsonField::Int(std::string_view key) const {
  const JsonField f = Child(key);
  if (f.is_null()) return f.Error("missing required integer");
  return f.AsInt();
}

Status JsonField::ExpectObject() const {
  if (value_->is_object()) return OkStatus();
  return Error("expected an object, got " + TypeName(*value_));
}

Status JsonField::ExpectArray() const {
  if (value_->is_array()) return OkStatus();
  return Error("expected an array, got " + TypeName(*value_));
}

StatusOr<std::string> JsonField::AsString() const {
  if (!value_->is_string()) return Error("expected a string, got " + TypeName(*value_));
  return value_->get<std::string>();
}

StatusOr<int64_t> JsonField::AsInt() const {
  if (!value_->is_number_integer()) return Error("expected an integer, got " + TypeName(*value_));
  return value_->get<int64_t>();
}

Status JsonField::Error(std::string_view what) const {
  return InvalidArgument(source_, ": key '", path_.empty() ? "<root>" : path_, "': ", what);
}

}  // namespace moe::model
