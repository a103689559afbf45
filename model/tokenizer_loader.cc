#include "model/tokenizer_loader.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/clock.h"
#include "core/logging.h"

namespace moe::model {
namespace {

StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(path, ": cannot open");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return DataLoss(path, ": read failed");
  return buffer.str();
}

}  // namespace

StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& model_dir) {
  const std::filesystem::path dir(model_dir);
  const std::string tokenizer_path = (dir / "tokenizer.json").string();
  const std::string config_path = (dir / "tokenizer_config.json").string();
  std::error_code ec;
  if (!std::filesystem::exists(tokenizer_path, ec)) return std::unique_ptr<Tokenizer>();
  Stopwatch watch;
  MOE_ASSIGN_OR_RETURN(std::string tokenizer_json, ReadFile(tokenizer_path));
  std::string config_json;
  if (std::filesystem::exists(config_path, ec)) {
    MOE_ASSIGN_OR_RETURN(config_json, ReadFile(config_path));
  }
  auto tokenizer = Tokenizer::FromJson(tokenizer_json, config_json);
  if (!tokenizer.ok()) return Annotate(tokenizer.status(), model_dir);
  MOE_LOG(DEBUG) << "loaded tokenizer from " << model_dir << " (" << (*tokenizer)->vocab_size()
                 << " ids) in " << watch.ElapsedSeconds() << " s";
  return tokenizer;
}

}  // namespace moe::model
