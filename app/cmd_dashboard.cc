// `moeserve dashboard`: one self-contained HTML report (no network access: data and scripts are
// inlined, charts are drawn on <canvas> by the inlined script) from
//   --log FILE    request logs of `moeserve serve --log-file` (request_finished, engine_stats):
//                 TTFT / TPOT / e2e percentiles over time, tokens/s, queue depth, batch size, KV
//                 usage, an expert-load heatmap (MoE layer x expert), latency CDFs;
//   --bench FILE  result JSON of `moeserve bench serve --json` (one point, or a sweep's points):
//                 latency vs request rate, goodput and throughput vs rate;
//   --raw FILE    per-request JSON Lines of `moeserve bench serve --raw`: client-side CDFs.
// The numbers are computed here; the page only draws them.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "core/clock.h"
#include "core/status.h"

namespace moe::app {
namespace {

using nlohmann::json;

struct DashboardOptions {
  std::vector<std::string> logs;
  std::vector<std::string> bench;
  std::vector<std::string> raw;
  std::string out;
  std::string title = "moeserve report";
  double window_s = 0;  // 0 = about 60 windows over the log's span
};

// Linear-interpolated percentile of sorted values (numpy's default).
double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return NAN;
  const double pos = p / 100.0 * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - static_cast<double>(lo));
}

json Num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

// Up to `max_points` (value, cumulative fraction) pairs of the empirical CDF.
json Cdf(std::vector<double> values, size_t max_points = 400) {
  json out = json::array();
  values.erase(
      std::remove_if(values.begin(), values.end(), [](double v) { return !std::isfinite(v); }),
      values.end());
  if (values.empty()) return out;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  const size_t step = std::max<size_t>(1, n / max_points);
  for (size_t i = 0; i < n; i += step) {
    out.push_back({values[i], static_cast<double>(i + 1) / static_cast<double>(n)});
  }
  if ((n - 1) % step != 0) out.push_back({values[n - 1], 1.0});
  return out;
}

json Stats(std::vector<double> values) {
  values.erase(
      std::remove_if(values.begin(), values.end(), [](double v) { return !std::isfinite(v); }),
      values.end());
  std::sort(values.begin(), values.end());
  double sum = 0;
  for (double v : values) sum += v;
  return {{"count", values.size()},
          {"mean", values.empty() ? json(nullptr) : Num(sum / values.size())},
          {"p50", Num(Percentile(values, 50))},
          {"p90", Num(Percentile(values, 90))},
          {"p99", Num(Percentile(values, 99))},
          {"max", values.empty() ? json(nullptr) : Num(values.back())}};
}

double NumberOr(const json& j, const char* key, double fallback = NAN) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return fallback;
  return it->get<double>();
}

struct RequestEvent {
  double t = 0;  // seconds since the report's origin (filled later)
  int64_t end_ns = 0;
  double ttft = NAN, tpot = NAN, e2e = NAN, queue = NAN, prefill = NAN, decode = NAN, max_itl = NAN;
  int completion_tokens = 0;
  int prompt_tokens = 0;
  bool ok = true;
};

struct StatsEvent {
  int64_t wall_ns = 0;
  json j;
};

struct LogData {
  std::vector<RequestEvent> requests;
  std::vector<StatsEvent> stats;
  std::vector<std::vector<double>> heat;  // [layers][experts], summed
  int64_t bad_lines = 0;
  std::map<std::string, int64_t> codes;
  std::map<std::string, int64_t> finish_reasons;
  std::map<std::string, int64_t> apis;
};

Status ReadLog(const std::string& path, LogData* data) {
  std::ifstream in(path);
  if (!in) return NotFound("--log: cannot read '", path, "'");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      ++data->bad_lines;
      continue;
    }
    const std::string event = j.value("event", "");
    if (event == "request_finished") {
      RequestEvent r;
      r.end_ns = static_cast<int64_t>(NumberOr(j, "ended_ns", 0));
      if (r.end_ns == 0) r.end_ns = static_cast<int64_t>(NumberOr(j, "finished_ns", 0));
      if (r.end_ns == 0) continue;
      r.ttft = NumberOr(j, "ttft_ms");
      r.tpot = NumberOr(j, "tpot_ms");
      r.ok = NumberOr(j, "grpc_code", 0) == 0;
      if (NumberOr(j, "arrival_ns", 0) > 0) {
        r.e2e = NumberOr(j, "e2e_ms");
        r.queue = NumberOr(j, "queue_ms");
        r.prefill = NumberOr(j, "prefill_ms");
        r.decode = NumberOr(j, "decode_ms");
        r.max_itl = NumberOr(j, "max_itl_ms");
      }
      r.completion_tokens = static_cast<int>(NumberOr(j, "completion_tokens", 0));
      r.prompt_tokens = static_cast<int>(NumberOr(j, "prompt_tokens", 0));
      data->requests.push_back(r);
      ++data->codes[std::to_string(static_cast<int>(NumberOr(j, "grpc_code", 0)))];
      const std::string reason = j.value("finish_reason", "");
      ++data->finish_reasons[reason.empty() ? "none" : reason];
      ++data->apis[j.value("api", "?")];
    } else if (event == "engine_stats") {
      StatsEvent s;
      s.wall_ns = static_cast<int64_t>(NumberOr(j, "wall_ns", 0));
      if (s.wall_ns == 0) continue;
      auto heat = j.find("expert_tokens");
      if (heat != j.end() && heat->is_array()) {
        const size_t layers = heat->size();
        if (data->heat.size() < layers) data->heat.resize(layers);
        for (size_t l = 0; l < layers; ++l) {
          const json& row = (*heat)[l];
          if (!row.is_array()) continue;
          if (data->heat[l].size() < row.size()) data->heat[l].resize(row.size(), 0.0);
          for (size_t e = 0; e < row.size(); ++e) {
            if (row[e].is_number()) data->heat[l][e] += row[e].get<double>();
          }
        }
        j.erase("expert_tokens");
      }
      s.j = std::move(j);
      data->stats.push_back(std::move(s));
    }
  }
  return OkStatus();
}

// A "nice" window length near span / 60 (1, 2, 5 x 10^k seconds, at least 1 s).
double PickWindow(double span_s) {
  const double target = std::max(1.0, span_s / 60.0);
  double base = std::pow(10.0, std::floor(std::log10(target)));
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (base * m >= target) return base * m;
  }
  return base * 10;
}

json LogJson(LogData& data, double window_s) {
  json out;
  int64_t t0 = INT64_MAX;
  int64_t t1 = 0;
  for (const RequestEvent& r : data.requests) {
    t0 = std::min(t0, r.end_ns);
    t1 = std::max(t1, r.end_ns);
  }
  for (const StatsEvent& s : data.stats) {
    t0 = std::min(t0, s.wall_ns);
    t1 = std::max(t1, s.wall_ns);
  }
  if (t0 == INT64_MAX) t0 = t1 = 0;
  const double span = static_cast<double>(t1 - t0) * 1e-9;
  const double window = window_s > 0 ? window_s : PickWindow(span);
  out["origin_ns"] = t0;
  out["span_s"] = span;
  out["window_s"] = window;

  // Request percentiles per window of finish time.
  std::sort(data.requests.begin(), data.requests.end(),
            [](const RequestEvent& a, const RequestEvent& b) { return a.end_ns < b.end_ns; });
  json series = {{"t", json::array()},
                 {"count", json::array()},
                 {"tokens_per_s", json::array()},
                 {"requests_per_s", json::array()}};
  for (const char* m : {"ttft", "tpot", "e2e"}) {
    series[m] = {{"p50", json::array()}, {"p90", json::array()}, {"p99", json::array()}};
  }
  size_t i = 0;
  const size_t n = data.requests.size();
  while (i < n) {
    const double t = static_cast<double>(data.requests[i].end_ns - t0) * 1e-9;
    const double start = std::floor(t / window) * window;
    std::vector<double> ttft, tpot, e2e;
    int64_t tokens = 0;
    size_t count = 0;
    while (i < n && static_cast<double>(data.requests[i].end_ns - t0) * 1e-9 < start + window) {
      const RequestEvent& r = data.requests[i++];
      if (std::isfinite(r.ttft)) ttft.push_back(r.ttft);
      if (std::isfinite(r.tpot)) tpot.push_back(r.tpot);
      if (std::isfinite(r.e2e)) e2e.push_back(r.e2e);
      tokens += r.completion_tokens;
      ++count;
    }
    series["t"].push_back(start + window / 2);
    series["count"].push_back(count);
    series["tokens_per_s"].push_back(static_cast<double>(tokens) / window);
    series["requests_per_s"].push_back(static_cast<double>(count) / window);
    for (auto [name, values] : {std::pair{"ttft", &ttft}, {"tpot", &tpot}, {"e2e", &e2e}}) {
      std::sort(values->begin(), values->end());
      for (auto [p, key] : {std::pair{50.0, "p50"}, {90.0, "p90"}, {99.0, "p99"}}) {
        series[name][key].push_back(Num(Percentile(*values, p)));
      }
    }
  }
  out["requests"]["series"] = std::move(series);

  std::vector<double> ttft, tpot, e2e, queue, prefill, decode, max_itl;
  int64_t failed = 0;
  for (const RequestEvent& r : data.requests) {
    ttft.push_back(r.ttft);
    tpot.push_back(r.tpot);
    e2e.push_back(r.e2e);
    queue.push_back(r.queue);
    prefill.push_back(r.prefill);
    decode.push_back(r.decode);
    max_itl.push_back(r.max_itl);
    failed += r.ok ? 0 : 1;
  }
  out["requests"]["count"] = data.requests.size();
  out["requests"]["failed"] = failed;
  out["requests"]["codes"] = data.codes;
  out["requests"]["finish_reasons"] = data.finish_reasons;
  out["requests"]["apis"] = data.apis;
  out["requests"]["cdf"] = {{"ttft", Cdf(ttft)},
                            {"tpot", Cdf(tpot)},
                            {"e2e", Cdf(e2e)},
                            {"queue", Cdf(queue)},
                            {"max_itl", Cdf(max_itl)}};
  out["requests"]["stats"] = {{"ttft", Stats(ttft)},       {"tpot", Stats(tpot)},
                              {"e2e", Stats(e2e)},         {"queue", Stats(queue)},
                              {"prefill", Stats(prefill)}, {"decode", Stats(decode)},
                              {"max_itl", Stats(max_itl)}};

  // Engine time series from engine_stats events.
  std::sort(data.stats.begin(), data.stats.end(),
            [](const StatsEvent& a, const StatsEvent& b) { return a.wall_ns < b.wall_ns; });
  json engine = {{"t", json::array()}};
  const char* keys[] = {"running",
                        "waiting",
                        "waiting_tokens",
                        "kv_usage",
                        "prompt_tokens_per_s",
                        "generation_tokens_per_s",
                        "mean_batch_size",
                        "max_batch_size",
                        "mean_step_ms",
                        "prefix_cache_hit_rate",
                        "expert_load_imbalance",
                        "distinct_experts_per_step",
                        "streams_open",
                        "steps"};
  for (const char* k : keys) engine[k] = json::array();
  for (const StatsEvent& s : data.stats) {
    engine["t"].push_back(static_cast<double>(s.wall_ns - t0) * 1e-9);
    for (const char* k : keys) engine[k].push_back(Num(NumberOr(s.j, k)));
  }
  out["engine"] = std::move(engine);
  if (!data.heat.empty()) {
    size_t experts = 0;
    for (const auto& row : data.heat) experts = std::max(experts, row.size());
    for (auto& row : data.heat) row.resize(experts, 0.0);
    out["heatmap"] = {{"layers", data.heat.size()}, {"experts", experts}, {"values", data.heat}};
  } else {
    out["heatmap"] = nullptr;
  }
  out["bad_lines"] = data.bad_lines;
  return out;
}

std::string BaseName(const std::string& path) {
  return std::filesystem::path(path).filename().string();
}

Status ReadBench(const std::string& path, json* points) {
  std::ifstream in(path);
  if (!in) return NotFound("--bench: cannot read '", path, "'");
  json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return InvalidArgument("--bench: '", path, "' is not a JSON object");
  }
  std::vector<json> items;
  if (j.contains("points") && j["points"].is_array()) {
    for (const json& p : j["points"]) items.push_back(p);
  } else {
    items.push_back(j);
  }
  for (const json& p : items) {
    if (!p.is_object()) continue;
    json point;
    point["series"] = BaseName(path);
    point["label"] = p.value("label", "");
    const auto rate = p.find("request_rate");
    point["rate"] = rate != p.end() && rate->is_number() ? *rate : json(nullptr);
    point["max_concurrency"] = p.contains("max_concurrency") ? p["max_concurrency"] : json(nullptr);
    // Where the offered rate is unbounded (inf) the achieved rate places the point.
    point["x"] = point["rate"].is_number() ? point["rate"] : Num(NumberOr(p, "request_throughput"));
    for (const char* k : {"completed",
                          "failed",
                          "duration",
                          "request_throughput",
                          "request_goodput",
                          "output_throughput",
                          "total_token_throughput",
                          "slo_attainment",
                          "median_ttft_ms",
                          "p90_ttft_ms",
                          "p99_ttft_ms",
                          "mean_ttft_ms",
                          "median_tpot_ms",
                          "p99_tpot_ms",
                          "median_itl_ms",
                          "p99_itl_ms",
                          "median_e2el_ms",
                          "p99_e2el_ms",
                          "max_output_tokens_per_s",
                          "max_concurrent_requests"}) {
      point[k] = Num(NumberOr(p, k));
    }
    points->push_back(std::move(point));
  }
  return OkStatus();
}

Status ReadRaw(const std::string& path, json* out) {
  std::ifstream in(path);
  if (!in) return NotFound("--raw: cannot read '", path, "'");
  struct Group {
    std::vector<double> ttft, tpot, e2el, itl;
    int64_t failed = 0;
  };
  std::map<int, Group> groups;  // by sweep point (-1 = none)
  std::string line;
  int64_t bad = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      ++bad;
      continue;
    }
    Group& g = groups[static_cast<int>(NumberOr(j, "point", -1))];
    if (!j.value("success", false)) {
      ++g.failed;
      continue;
    }
    const double t_send = NumberOr(j, "t_send");
    const json times = j.value("chunk_times", json::array());
    if (!std::isfinite(t_send) || !times.is_array() || times.empty()) continue;
    std::vector<double> ct;
    for (const json& t : times) {
      if (t.is_number()) ct.push_back(t.get<double>());
    }
    if (ct.empty()) continue;
    const double ttft = (ct.front() - t_send) * 1e3;
    const double e2el = (ct.back() - t_send) * 1e3;
    g.ttft.push_back(ttft);
    g.e2el.push_back(e2el);
    const double out_tokens = NumberOr(j, "output_tokens", 0);
    if (out_tokens > 1) g.tpot.push_back((e2el - ttft) / (out_tokens - 1));
    for (size_t k = 1; k < ct.size(); ++k) g.itl.push_back((ct[k] - ct[k - 1]) * 1e3);
  }
  for (auto& [point, g] : groups) {
    json entry;
    entry["name"] = point >= 0 ? BaseName(path) + " #" + std::to_string(point) : BaseName(path);
    entry["count"] = g.ttft.size();
    entry["failed"] = g.failed;
    entry["ttft"] = Cdf(g.ttft, 300);
    entry["tpot"] = Cdf(g.tpot, 300);
    entry["e2el"] = Cdf(g.e2el, 300);
    entry["itl"] = Cdf(g.itl, 300);
    out->push_back(std::move(entry));
  }
  if (bad > 0) std::cerr << "moeserve dashboard: " << path << ": " << bad << " bad lines skipped\n";
  return OkStatus();
}

// Makes embedded JSON safe inside <script>: no "</" sequence can close the element.
std::string ScriptSafe(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '<') {
      out += "\\u003c";
    } else {
      out += s[i];
    }
  }
  return out;
}

const char kPageHead[] = R"HTML(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>moeserve report</title>
<style>
  body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; background: #f4f5f7;
         color: #1d2330; }
  header { background: #1d2330; color: #fff; padding: 14px 24px; }
  header h1 { margin: 0; font-size: 20px; font-weight: 600; }
  header .sub { font-size: 12px; opacity: 0.75; margin-top: 4px; }
  h2 { font-size: 16px; margin: 22px 24px 8px; }
  .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 14px;
          padding: 0 24px; }
  .card { background: #fff; border-radius: 6px; box-shadow: 0 1px 3px rgba(0,0,0,0.12);
          padding: 10px 12px; }
  .card h3 { font-size: 13px; margin: 0 0 6px; font-weight: 600; }
  .card canvas { width: 100%; height: 260px; display: block; }
  .card.wide { grid-column: 1 / -1; }
  .card.wide canvas { height: 360px; }
  table { border-collapse: collapse; font-size: 12px; }
  td, th { padding: 3px 10px; border-bottom: 1px solid #e3e5ea; text-align: right; }
  th:first-child, td:first-child { text-align: left; }
  #status { font-size: 11px; color: #6b7280; padding: 16px 24px; }
  #errors { color: #b91c1c; padding: 0 24px; white-space: pre-wrap; }
</style>
</head>
<body>
<header><h1 id="title">moeserve report</h1><div class="sub" id="subtitle"></div></header>
<div id="errors"></div>
<div id="content"></div>
<div id="status">rendering...</div>
)HTML";

const char kPageScript[] = R"JS(
"use strict";
(function () {
  var errorsEl = document.getElementById("errors");
  window.addEventListener("error", function (e) {
    errorsEl.textContent += "error: " + e.message + "\n";
  });
  var D = JSON.parse(document.getElementById("data").textContent);
  var content = document.getElementById("content");
  var COLORS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777",
                "#4b5563", "#65a30d", "#b45309"];
  var charts = 0;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function section(title) {
    content.appendChild(el("h2", "", title));
    var g = el("div", "grid");
    content.appendChild(g);
    return g;
  }
  function card(grid, title, wide) {
    var c = el("div", wide ? "card wide" : "card");
    c.appendChild(el("h3", "", title));
    grid.appendChild(c);
    return c;
  }
  function canvasIn(c) {
    var cv = el("canvas");
    c.appendChild(cv);
    var r = cv.getBoundingClientRect();
    var w = Math.max(300, Math.round(r.width || 540)), h = Math.max(200, Math.round(r.height || 260));
    var ratio = window.devicePixelRatio || 1;
    cv.width = w * ratio;
    cv.height = h * ratio;
    var ctx = cv.getContext("2d");
    ctx.scale(ratio, ratio);
    return { ctx: ctx, w: w, h: h };
  }
  function finite(v) { return typeof v === "number" && isFinite(v); }
  function niceStep(span, ticks) {
    var raw = span / Math.max(1, ticks);
    var p = Math.pow(10, Math.floor(Math.log10(raw)));
    var m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }
  function fmt(v) {
    var a = Math.abs(v);
    if (a === 0) return "0";
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(0) + "k";
    if (a >= 100) return v.toFixed(0);
    if (a >= 1) return v.toFixed(a >= 10 ? 1 : 2).replace(/\.?0+$/, "");
    return v.toPrecision(2);
  }
  function noData(p, text) {
    p.ctx.fillStyle = "#9ca3af";
    p.ctx.font = "13px sans-serif";
    p.ctx.textAlign = "center";
    p.ctx.fillText(text || "no data", p.w / 2, p.h / 2);
  }

  // series: [{name, points: [[x, y], ...], color?, dots?}]
  function lineChart(c, series, opt) {
    opt = opt || {};
    var p = canvasIn(c);
    charts++;
    var ctx = p.ctx;
    var xs = [], ys = [];
    series.forEach(function (s) {
      s.points.forEach(function (pt) {
        if (finite(pt[0]) && finite(pt[1])) { xs.push(pt[0]); ys.push(pt[1]); }
      });
    });
    if (xs.length === 0) { noData(p); return; }
    var x0 = opt.xmin !== undefined ? opt.xmin : Math.min.apply(null, xs);
    var x1 = opt.xmax !== undefined ? opt.xmax : Math.max.apply(null, xs);
    var y0 = opt.ymin !== undefined ? opt.ymin : Math.min(0, Math.min.apply(null, ys));
    var y1 = opt.ymax !== undefined ? opt.ymax : Math.max.apply(null, ys);
    if (x1 === x0) { x1 = x0 + 1; x0 = x0 - (opt.xmin !== undefined ? 0 : 1); }
    if (y1 === y0) { y1 = y0 + 1; }
    y1 = y1 + (y1 - y0) * 0.05;
    var L = 56, R = 12, T = 10, B = 40;
    var W = p.w - L - R, H = p.h - T - B;
    function X(v) { return L + (v - x0) / (x1 - x0) * W; }
    function Y(v) { return T + H - (v - y0) / (y1 - y0) * H; }
    ctx.font = "11px sans-serif";
    ctx.strokeStyle = "#e5e7eb";
    ctx.fillStyle = "#4b5563";
    ctx.lineWidth = 1;
    var ys_ = niceStep(y1 - y0, 5);
    ctx.textAlign = "right";
    for (var v = Math.ceil(y0 / ys_) * ys_; v <= y1; v += ys_) {
      ctx.beginPath(); ctx.moveTo(L, Y(v)); ctx.lineTo(L + W, Y(v)); ctx.stroke();
      ctx.fillText(fmt(v), L - 6, Y(v) + 4);
    }
    var xs_ = niceStep(x1 - x0, 6);
    ctx.textAlign = "center";
    for (var u = Math.ceil(x0 / xs_) * xs_; u <= x1; u += xs_) {
      ctx.beginPath(); ctx.moveTo(X(u), T); ctx.lineTo(X(u), T + H); ctx.stroke();
      ctx.fillText(fmt(u), X(u), T + H + 14);
    }
    ctx.strokeStyle = "#9ca3af";
    ctx.strokeRect(L, T, W, H);
    if (opt.xlabel) ctx.fillText(opt.xlabel, L + W / 2, p.h - 6);
    if (opt.ylabel) {
      ctx.save(); ctx.translate(12, T + H / 2); ctx.rotate(-Math.PI / 2);
      ctx.fillText(opt.ylabel, 0, 0); ctx.restore();
    }
    var lx = L + 8;
    series.forEach(function (s, i) {
      var color = s.color || COLORS[i % COLORS.length];
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      ctx.lineWidth = 1.8;
      ctx.beginPath();
      var started = false;
      s.points.forEach(function (pt) {
        if (!finite(pt[0]) || !finite(pt[1])) { started = false; return; }
        if (!started) { ctx.moveTo(X(pt[0]), Y(pt[1])); started = true; }
        else ctx.lineTo(X(pt[0]), Y(pt[1]));
      });
      ctx.stroke();
      if (s.dots || s.points.length < 3) {
        s.points.forEach(function (pt) {
          if (!finite(pt[0]) || !finite(pt[1])) return;
          ctx.beginPath(); ctx.arc(X(pt[0]), Y(pt[1]), 3, 0, 2 * Math.PI); ctx.fill();
        });
      }
      if (series.length > 1 || s.name) {
        ctx.fillRect(lx, T + 6, 12, 3);
        ctx.fillStyle = "#1f2937";
        ctx.textAlign = "left";
        ctx.fillText(s.name, lx + 16, T + 11);
        lx += 24 + ctx.measureText(s.name).width;
      }
    });
  }

  function zip(xs, ys) {
    var out = [];
    for (var i = 0; i < xs.length; i++) out.push([xs[i], ys[i]]);
    return out;
  }

  function heatmap(c, hm) {
    var p = canvasIn(c);
    charts++;
    var ctx = p.ctx;
    var L = 44, R = 70, T = 8, B = 34;
    var W = p.w - L - R, H = p.h - T - B;
    var max = 0;
    hm.values.forEach(function (row) { row.forEach(function (v) { if (v > max) max = v; }); });
    if (max <= 0) { noData(p, "no routed tokens"); return; }
    var cw = W / hm.experts, ch = H / hm.layers;
    function color(f) {
      // white -> blue -> dark red
      var r, g, b;
      if (f < 0.5) { var t = f / 0.5; r = 255 - 218 * t; g = 255 - 156 * t; b = 255 - 20 * t; }
      else { var s = (f - 0.5) / 0.5; r = 37 + 150 * s; g = 99 - 80 * s; b = 235 - 190 * s; }
      return "rgb(" + Math.round(r) + "," + Math.round(g) + "," + Math.round(b) + ")";
    }
    for (var l = 0; l < hm.layers; l++) {
      for (var e = 0; e < hm.experts; e++) {
        ctx.fillStyle = color(hm.values[l][e] / max);
        ctx.fillRect(L + e * cw, T + l * ch, Math.ceil(cw), Math.ceil(ch));
      }
    }
    ctx.strokeStyle = "#9ca3af";
    ctx.strokeRect(L, T, W, H);
    ctx.fillStyle = "#4b5563";
    ctx.font = "11px sans-serif";
    ctx.textAlign = "right";
    var lstep = Math.max(1, Math.ceil(hm.layers / 12));
    for (var i = 0; i < hm.layers; i += lstep) ctx.fillText(String(i), L - 4, T + (i + 0.5) * ch + 4);
    ctx.textAlign = "center";
    var estep = Math.max(1, Math.ceil(hm.experts / 16));
    for (var j = 0; j < hm.experts; j += estep) ctx.fillText(String(j), L + (j + 0.5) * cw, T + H + 13);
    ctx.fillText("expert", L + W / 2, p.h - 4);
    ctx.save(); ctx.translate(10, T + H / 2); ctx.rotate(-Math.PI / 2);
    ctx.fillText("MoE layer", 0, 0); ctx.restore();
    for (var k = 0; k <= 40; k++) {
      ctx.fillStyle = color(1 - k / 40);
      ctx.fillRect(p.w - R + 14, T + k * H / 41, 14, H / 41 + 1);
    }
    ctx.fillStyle = "#4b5563";
    ctx.textAlign = "left";
    ctx.fillText(fmt(max), p.w - R + 32, T + 10);
    ctx.fillText("0", p.w - R + 32, T + H);
  }

  function table(c, header, rows) {
    var t = el("table");
    var tr = el("tr");
    header.forEach(function (h) { tr.appendChild(el("th", "", h)); });
    t.appendChild(tr);
    rows.forEach(function (r) {
      var row = el("tr");
      r.forEach(function (v) {
        row.appendChild(el("td", "", finite(v) ? fmt(v) : (v === null || v === undefined ? "-" : String(v))));
      });
      t.appendChild(row);
    });
    c.appendChild(t);
  }

  function renderLog(log) {
    var rq = log.requests;
    var g = section("Requests (" + rq.count + " finished, " + rq.failed + " failed; window " +
                    fmt(log.window_s) + " s)");
    var s = rq.series;
    var st = rq.stats;
    table(card(g, "Latency summary (ms)"), ["metric", "count", "mean", "p50", "p90", "p99", "max"],
          ["ttft", "tpot", "e2e", "queue", "prefill", "decode", "max_itl"].map(function (k) {
            var x = st[k];
            return [k, x.count, x.mean, x.p50, x.p90, x.p99, x.max];
          }));
    ["ttft", "tpot", "e2e"].forEach(function (m) {
      var names = { ttft: "TTFT", tpot: "TPOT", e2e: "End-to-end latency" };
      lineChart(card(g, names[m] + " percentiles over time (ms)"), [
        { name: "p50", points: zip(s.t, s[m].p50) },
        { name: "p90", points: zip(s.t, s[m].p90) },
        { name: "p99", points: zip(s.t, s[m].p99) }], { xlabel: "time (s)", ylabel: "ms" });
    });
    var e = log.engine;
    var tps = e.t.length > 0
        ? [{ name: "generation", points: zip(e.t, e.generation_tokens_per_s) },
           { name: "prompt", points: zip(e.t, e.prompt_tokens_per_s) }]
        : [{ name: "generated (finished requests)", points: zip(s.t, s.tokens_per_s) }];
    lineChart(card(g, "Tokens per second"), tps, { xlabel: "time (s)", ylabel: "tokens/s" });
    lineChart(card(g, "Queue depth and running requests"), [
      { name: "waiting", points: zip(e.t, e.waiting) },
      { name: "running", points: zip(e.t, e.running) }], { xlabel: "time (s)", ylabel: "requests" });
    lineChart(card(g, "Batch size (sequences per step)"), [
      { name: "mean", points: zip(e.t, e.mean_batch_size) },
      { name: "max", points: zip(e.t, e.max_batch_size) }], { xlabel: "time (s)", ylabel: "sequences" });
    lineChart(card(g, "KV cache usage (%)"), [
      { name: "kv usage", points: zip(e.t, e.kv_usage.map(function (v) { return finite(v) ? v * 100 : v; })) }],
      { xlabel: "time (s)", ylabel: "%", ymin: 0 });
    lineChart(card(g, "Engine step time (ms, mean)"), [
      { name: "step", points: zip(e.t, e.mean_step_ms) }], { xlabel: "time (s)", ylabel: "ms" });
    lineChart(card(g, "Expert load imbalance (max / mean) and distinct experts per step"), [
      { name: "imbalance", points: zip(e.t, e.expert_load_imbalance) },
      { name: "distinct experts", points: zip(e.t, e.distinct_experts_per_step) }], { xlabel: "time (s)" });
    var cd = rq.cdf;
    lineChart(card(g, "Latency CDFs (ms)"), [
      { name: "TTFT", points: cd.ttft }, { name: "e2e", points: cd.e2e },
      { name: "queue", points: cd.queue }], { xlabel: "ms", ylabel: "fraction", ymin: 0, ymax: 1 });
    lineChart(card(g, "TPOT and max inter-token latency CDFs (ms)"), [
      { name: "TPOT", points: cd.tpot }, { name: "max ITL", points: cd.max_itl }],
      { xlabel: "ms", ylabel: "fraction", ymin: 0, ymax: 1 });
    var hc = card(g, "Expert load: tokens per expert per MoE layer" +
                     (log.heatmap ? " (" + log.heatmap.layers + " x " + log.heatmap.experts + ")" : ""), true);
    if (log.heatmap) heatmap(hc, log.heatmap);
    else { var p = canvasIn(hc); charts++; noData(p, "no expert routing in the log (serve with --collect-routing)"); }
  }

  function renderBench(points) {
    var g = section("Load-test results (" + points.length + " points)");
    var bySeries = {};
    points.forEach(function (pt) { (bySeries[pt.series] = bySeries[pt.series] || []).push(pt); });
    var names = Object.keys(bySeries);
    var RATE = "request rate (req/s; achieved rate for rate = inf)";
    function curves(keys, labels) {
      var out = [];
      names.forEach(function (n) {
        var pts = bySeries[n].filter(function (p) { return finite(p.x); })
            .sort(function (a, b) { return a.x - b.x; });
        keys.forEach(function (k, i) {
          out.push({ name: (names.length > 1 ? n + " " : "") + labels[i], dots: true,
                     points: pts.map(function (p) { return [p.x, p[k]]; }) });
        });
      });
      return out;
    }
    lineChart(card(g, "TTFT vs request rate (ms)"),
              curves(["median_ttft_ms", "p99_ttft_ms"], ["p50", "p99"]), { xlabel: RATE, ylabel: "ms" });
    lineChart(card(g, "TPOT and E2E latency vs request rate (ms)"),
              curves(["median_tpot_ms", "p99_tpot_ms", "median_e2el_ms"], ["TPOT p50", "TPOT p99", "E2EL p50"]),
              { xlabel: RATE, ylabel: "ms" });
    lineChart(card(g, "Goodput and throughput vs request rate (req/s)"),
              curves(["request_goodput", "request_throughput"], ["goodput", "throughput"]),
              { xlabel: RATE, ylabel: "req/s", ymin: 0 });
    table(card(g, "Points", true), ["series", "rate", "completed", "failed", "req/s", "goodput", "out tok/s",
                                    "TTFT p50", "TTFT p99", "TPOT p50", "ITL p99", "E2EL p50"],
          points.map(function (p) {
            return [p.series + (p.label ? " " + p.label : ""), finite(p.rate) ? p.rate : "inf", p.completed, p.failed,
                    p.request_throughput, p.request_goodput, p.output_throughput, p.median_ttft_ms,
                    p.p99_ttft_ms, p.median_tpot_ms, p.p99_itl_ms, p.median_e2el_ms];
          }));
  }

  function renderRaw(raw) {
    var g = section("Client-side latency CDFs (" + raw.length + " runs)");
    [["ttft", "TTFT"], ["tpot", "TPOT"], ["e2el", "E2E latency"], ["itl", "Inter-chunk latency (ITL)"]]
        .forEach(function (m) {
          lineChart(card(g, m[1] + " CDF (ms)"), raw.map(function (r) {
            return { name: r.name + " (" + r.count + ")", points: r[m[0]] };
          }), { xlabel: "ms", ylabel: "fraction", ymin: 0, ymax: 1 });
        });
  }

  document.getElementById("title").textContent = D.title;
  document.title = D.title;
  document.getElementById("subtitle").textContent = "generated " +
      new Date(D.generated_ns / 1e6).toISOString() + " from " +
      D.sources.map(function (s) { return s.kind + ": " + s.path; }).join(", ");
  if (D.log) renderLog(D.log);
  if (D.bench && D.bench.length > 0) renderBench(D.bench);
  if (D.raw && D.raw.length > 0) renderRaw(D.raw);
  var status = "rendered " + charts + " charts";
  document.getElementById("status").textContent = status;
  document.body.setAttribute("data-rendered", String(charts));
  console.log("moeserve dashboard: " + status);
})();
)JS";

Status WriteReport(const DashboardOptions& o) {
  if (o.logs.empty() && o.bench.empty() && o.raw.empty()) {
    return InvalidArgument("give at least one of --log, --bench, --raw");
  }
  json data;
  data["title"] = o.title;
  data["generated_ns"] = WallNanos();
  json sources = json::array();
  LogData log;
  for (const std::string& path : o.logs) {
    MOE_RETURN_IF_ERROR(ReadLog(path, &log));
    sources.push_back({{"kind", "log"}, {"path", path}});
  }
  if (log.bad_lines > 0) {
    std::cerr << "moeserve dashboard: " << log.bad_lines << " unparsable log lines skipped\n";
  }
  data["log"] = o.logs.empty() ? json(nullptr) : LogJson(log, o.window_s);
  json bench = json::array();
  for (const std::string& path : o.bench) {
    MOE_RETURN_IF_ERROR(ReadBench(path, &bench));
    sources.push_back({{"kind", "bench"}, {"path", path}});
  }
  data["bench"] = std::move(bench);
  json raw = json::array();
  for (const std::string& path : o.raw) {
    MOE_RETURN_IF_ERROR(ReadRaw(path, &raw));
    sources.push_back({{"kind", "raw"}, {"path", path}});
  }
  data["raw"] = std::move(raw);
  data["sources"] = std::move(sources);

  std::ofstream out(o.out);
  if (!out) return Unavailable("--out: cannot write '", o.out, "'");
  out << kPageHead << "<script id=\"data\" type=\"application/json\">"
      << ScriptSafe(data.dump(-1, ' ', false, json::error_handler_t::replace))
      << "</script>\n<script>" << kPageScript << "</script>\n</body>\n</html>\n";
  if (!out) return DataLoss("--out: cannot write '", o.out, "'");
  return OkStatus();
}

}  // namespace

Action RegisterDashboard(CLI::App& app) {
  auto o = std::make_shared<DashboardOptions>();
  CLI::App* cmd = app.add_subcommand(
      "dashboard", "Render a self-contained HTML report from request logs and load-test results");
  cmd->add_option("--log", o->logs, "request log(s) of `moeserve serve --log-file` (JSON Lines)");
  cmd->add_option("--bench", o->bench, "result JSON(s) of `moeserve bench serve --json`");
  cmd->add_option("--raw", o->raw, "per-request JSON Lines of `moeserve bench serve --raw`");
  cmd->add_option("--out", o->out, "the HTML file to write")->required();
  cmd->add_option("--title", o->title, "report title");
  cmd->add_option("--window", o->window_s,
                  "seconds per time-series window (0 = about 60 windows over the log)")
      ->check(CLI::NonNegativeNumber);
  return [o]() {
    const Status status = WriteReport(*o);
    if (!status.ok()) {
      std::cerr << "moeserve dashboard: " << status.message() << "\n";
      return 1;
    }
    std::cout << "wrote " << o->out << "\n";
    return 0;
  };
}

}  // namespace moe::app
