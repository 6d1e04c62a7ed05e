// The semantic cache's benchmark (models/cache), in process, no cluster:
//  1. hit ratio and false hits on paraphrased questions: 200 base questions
//     from 20 templates (10 slot values each, so every question has nine
//     siblings that differ in one entity: the hard negatives), each asked
//     once as written and in 5 paraphrases (another phrasing of the
//     template, synonyms, contractions, filler, case, punctuation), all
//     1200 replayed in random order through the text embedder and the
//     cache; a miss stores its base question's id as the answer. A false
//     hit is a hit whose answer belongs to another base question. Swept
//     over thresholds; the paraphrases come from a seed other than the one
//     the embedder was tuned on (--seed);
//  2. what the cache costs per request: embedding, lookup on hit and on
//     miss, insert; and lookup against 1k-5k entries in one namespace
//     (faiss flat search);
//  3. what it saves in front of a model that takes --model-ms.
//   cache_bench [--seed 2] [--model-ms 20] [--threshold T] [--term-weight W] [--dim 512]
//               [--sweep] [--show-false] [--show-missed]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "models/cache/embedder.h"
#include "models/cache/semantic_cache.h"

namespace {

using lumen::models::SemanticCache;
using lumen::models::SemanticCacheOptions;
using lumen::models::TextEmbedderOptions;
using lumen::models::TextEmbedding;
using Clock = std::chrono::steady_clock;

// ---- workload ------------------------------------------------------------------

struct Template {
  // Phrasings of the same question; {X} and {Y} are the slots. The first
  // is the "as written" form.
  std::vector<std::string> frames;
  std::vector<std::pair<std::string, std::string>> values;  // (X, Y)
};

std::vector<Template> Templates() {
  auto xs = [](std::vector<std::string> v) {
    std::vector<std::pair<std::string, std::string>> out;
    for (auto& x : v) out.push_back({x, ""});
    return out;
  };
  return {
      {{"What is the capital of {X}?", "Which city is the capital of {X}?",
        "{X}'s capital city is what?", "Name the capital of {X}."},
       xs({"France", "Germany", "Spain", "Italy", "Japan", "Brazil", "Canada", "Australia", "Egypt",
           "Kenya"})},
      {{"What is the population of {X}?", "How many people live in {X}?", "Population of {X}?",
        "What's the current population of {X}?"},
       xs({"Tokyo", "Paris", "London", "Berlin", "Madrid", "Rome", "Toronto", "Sydney", "Cairo",
           "Nairobi"})},
      {{"What is the weather forecast for {X} tomorrow?", "Tomorrow's weather forecast for {X}?",
        "What will the weather be like in {X} tomorrow?", "Weather in {X} tomorrow?"},
       xs({"Chicago", "Boston", "Seattle", "Denver", "Miami", "Dallas", "Atlanta", "Phoenix",
           "Portland", "Austin"})},
      {{"How many calories are in {X}?", "What is the calorie count of {X}?",
        "{X}: how many calories?", "Calories in {X}?"},
       xs({"a banana", "an apple", "an avocado", "a boiled egg", "a slice of pizza", "a bagel",
           "a cup of rice", "a glass of milk", "a croissant", "a chocolate bar"})},
      {{"How do I reset my password on {X}?", "I forgot my {X} password, how do I reset it?",
        "How can I reset my {X} password?", "Reset {X} password"},
       xs({"Gmail", "Netflix", "Facebook", "Instagram", "Spotify", "Amazon", "LinkedIn", "Twitter",
           "Dropbox", "Slack"})},
      {{"How can I cancel my {X} subscription?", "I want to cancel my subscription to {X}.",
        "How do I cancel {X}?", "Cancel my {X} subscription"},
       xs({"Hulu", "Disney Plus", "YouTube Premium", "Apple Music", "Audible", "Peloton", "HBO Max",
           "Xbox Game Pass", "Adobe Creative Cloud", "Duolingo"})},
      {{"Who wrote {X}?", "Who is the author of {X}?", "{X} was written by whom?",
        "Who's the author of the book {X}?"},
       xs({"Pride and Prejudice", "Moby Dick", "War and Peace", "The Great Gatsby", "Ulysses",
           "Don Quixote", "Jane Eyre", "Brave New World", "The Odyssey", "Crime and Punishment"})},
      {{"How do I convert {X} to {Y}?", "Convert {X} into {Y}",
        "What is the formula to convert {X} to {Y}?", "How to convert from {X} to {Y}?"},
       {{"miles", "kilometers"},
        {"celsius", "fahrenheit"},
        {"fahrenheit", "celsius"},  // the reverse of its sibling: a hard negative
        {"pounds", "kilograms"},
        {"inches", "centimeters"},
        {"gallons", "liters"},
        {"ounces", "grams"},
        {"feet", "meters"},
        {"cups", "milliliters"},
        {"acres", "hectares"}}},
      {{"What are the symptoms of {X}?", "What symptoms does {X} cause?", "Symptoms of {X}?",
        "How do I know if I have {X}? What are the symptoms?"},
       xs({"flu", "measles", "diabetes", "asthma", "migraine", "malaria", "anemia", "bronchitis",
           "chickenpox", "lyme disease"})},
      {{"How do I install {X} on {Y}?", "Installing {X} on {Y}: what are the steps?",
        "What's the way to install {X} on {Y}?", "Install {X} on {Y}"},
       {{"Python", "Windows"},
        {"Python", "macOS"},
        {"Docker", "Ubuntu"},
        {"Docker", "Windows"},
        {"Node.js", "Linux"},
        {"Java", "macOS"},
        {"Git", "Windows"},
        {"PostgreSQL", "Ubuntu"},
        {"VS Code", "Linux"},
        {"Chrome", "Ubuntu"}}},
      {{"What is the stock price of {X} today?", "How much is {X} stock trading at today?",
        "{X} stock price today?", "What's {X}'s stock price right now?"},
       xs({"Apple", "Tesla", "Microsoft", "Nvidia", "Amazon", "Google", "Meta", "Netflix", "Intel",
           "IBM"})},
      {{"How long should I boil {X}?", "How many minutes to boil {X}?", "Boiling time for {X}?",
        "How long do you boil {X} for?"},
       xs({"an egg", "pasta", "potatoes", "rice", "corn", "broccoli", "carrots", "lobster",
           "shrimp", "quinoa"})},
      {{"What is the best way to learn {X}?", "How can I learn {X} quickly?",
        "Best way to learn {X}?", "What's the fastest way to learn {X}?"},
       xs({"Spanish", "French", "Japanese", "German", "Mandarin", "Italian", "Korean", "Portuguese",
           "Arabic", "Russian"})},
      {{"What is the difference between {X} and {Y}?", "How does {X} differ from {Y}?",
        "{X} vs {Y}: what's the difference?", "Difference between {Y} and {X}?"},
       {{"TCP", "UDP"},
        {"RAM", "ROM"},
        {"weather", "climate"},
        {"viruses", "bacteria"},
        {"stocks", "bonds"},
        {"alligators", "crocodiles"},
        {"HTTP", "HTTPS"},
        {"latitude", "longitude"},
        {"affect", "effect"},
        {"empathy", "sympathy"}}},
      {{"How do you say {X} in {Y}?", "Translate {X} into {Y}", "What is {X} in {Y}?",
        "How would I say {X} in {Y}?"},
       {{"good morning", "Spanish"},
        {"good morning", "Japanese"},
        {"good night", "French"},
        {"I love you", "German"},
        {"goodbye", "Korean"},
        {"cheers", "Portuguese"},
        {"happy birthday", "Italian"},
        {"see you later", "Spanish"},
        {"excuse me", "Japanese"},
        {"welcome", "Arabic"}}},
      {{"Give me a recipe for {X}", "How do I make {X} at home?", "What's a good {X} recipe?",
        "Recipe for {X}?"},
       xs({"lasagna", "pancakes", "guacamole", "banana bread", "chicken curry", "french toast",
           "hummus", "pad thai", "risotto", "tiramisu"})},
      {{"What time is it in {X} right now?", "Current time in {X}?",
        "What's the local time in {X}?", "What time is it now in {X}?"},
       xs({"Tokyo", "London", "Sydney", "Dubai", "Moscow", "Mumbai", "Singapore", "Honolulu",
           "Reykjavik", "Lima"})},
      {{"How far is {X} from {Y}?", "What is the distance between {X} and {Y}?",
        "Distance from {X} to {Y}?", "How far is it from {Y} to {X}?"},
       {{"Paris", "London"},
        {"New York", "Boston"},
        {"Tokyo", "Osaka"},
        {"Berlin", "Munich"},
        {"Madrid", "Barcelona"},
        {"Rome", "Milan"},
        {"Sydney", "Melbourne"},
        {"Chicago", "Detroit"},
        {"Seattle", "Vancouver"},
        {"Dallas", "Houston"}}},
      {{"What time does {X} open on Sunday?", "When does {X} open on Sundays?",
        "{X} Sunday opening hours?", "Is {X} open on Sunday, and from what time?"},
       xs({"Walmart", "Target", "Costco", "IKEA", "Home Depot", "Best Buy", "Trader Joe's",
           "Whole Foods", "Kroger", "Walgreens"})},
      {{"Why is my {X} not turning on?", "My {X} won't turn on, why?",
        "What should I do when my {X} does not turn on?", "{X} not turning on"},
       xs({"laptop", "iPhone", "TV", "printer", "router", "PS5", "microwave", "Kindle",
           "dishwasher", "car"})},
  };
}

struct Question {
  std::string text;
  int base = 0;  // which base question it asks
  bool original = false;
};

std::string Fill(std::string frame, const std::pair<std::string, std::string>& v) {
  return absl::StrReplaceAll(frame, {{"{X}", v.first}, {"{Y}", v.second}});
}

// Replaces whole words (case-insensitive on the first letter) with
// probability p each.
std::string Substitute(const std::string& text, std::mt19937& rng, double p) {
  // The bench's own synonym table; the embedder has none.
  static const std::vector<std::pair<std::string, std::string>> kSynonyms = {
      {"capital", "capital city"}, {"author", "writer"},    {"install", "set up"},
      {"forecast", "outlook"},     {"symptoms", "signs"},   {"way", "method"},
      {"quickly", "fast"},         {"learn", "study"},      {"make", "cook"},
      {"right now", "currently"},  {"people", "residents"}, {"cancel", "end"},
      {"forgot", "lost"},          {"best", "easiest"},     {"How far", "How distant"},
      {"price", "value"},          {"turn on", "power on"}, {"turning on", "powering on"},
  };
  std::string out = text;
  std::uniform_real_distribution<double> u(0, 1);
  for (const auto& [from, to] : kSynonyms) {
    size_t at = out.find(from);
    // "capital city" must not become "capital city city".
    if (at == std::string::npos || out.find(to) != std::string::npos || u(rng) >= p) continue;
    bool start = at == 0 || !std::isalpha(static_cast<unsigned char>(out[at - 1]));
    size_t end = at + from.size();
    bool stop = end == out.size() || !std::isalpha(static_cast<unsigned char>(out[end]));
    if (start && stop) out.replace(at, from.size(), to);
  }
  return out;
}

std::string Contract(const std::string& text, std::mt19937& rng) {
  static const std::vector<std::pair<std::string, std::string>> kPairs = {
      {"What is", "What's"}, {"what is", "what's"}, {"does not", "doesn't"},
      {"do not", "don't"},   {"will not", "won't"}, {"won't", "will not"},
      {"I am", "I'm"},       {"It is", "It's"},     {"Who is", "Who's"},
      {"What's", "What is"}, {"Who's", "Who is"},   {"How do I", "How'd I"},
  };
  std::string out = text;
  for (const auto& [from, to] : kPairs) {
    size_t at = out.find(from);
    if (at != std::string::npos && rng() % 2 == 0) out.replace(at, from.size(), to);
  }
  return out;
}

std::string Paraphrase(const Template& t, const std::pair<std::string, std::string>& v,
                       std::mt19937& rng) {
  std::uniform_real_distribution<double> u(0, 1);
  std::string s = Fill(t.frames[rng() % t.frames.size()], v);
  s = Substitute(s, rng, 0.35);
  s = Contract(s, rng);
  static const std::vector<std::string> kPrefixes = {
      "Hey, ",
      "Quick question: ",
      "Can you tell me ",
      "I was wondering, ",
      "Please tell me: ",
      "Hi! ",
      "Um, ",
      "I'd like to know ",
      "Do you know ",
      "So, ",
  };
  static const std::vector<std::string> kSuffixes = {" please", ", thanks", " (just curious)",
                                                     " thank you", " asap"};
  if (u(rng) < 0.4) {
    std::string prefix = kPrefixes[rng() % kPrefixes.size()];
    // "Can you tell me What is ..." reads oddly but is what people type.
    s = prefix + (u(rng) < 0.5 ? absl::AsciiStrToLower(s.substr(0, 1)) + s.substr(1) : s);
  }
  if (u(rng) < 0.25) {
    bool q = !s.empty() && (s.back() == '?' || s.back() == '.');
    char end = q ? s.back() : 0;
    if (q) s.pop_back();
    s += kSuffixes[rng() % kSuffixes.size()];
    if (end) s += end;
  }
  double c = u(rng);
  if (c < 0.25) {
    s = absl::AsciiStrToLower(s);
  } else if (c < 0.33) {
    s = absl::AsciiStrToUpper(s);
  }
  double p = u(rng);
  if (!s.empty() && (s.back() == '?' || s.back() == '.')) {
    if (p < 0.3) {
      s.pop_back();
    } else if (p < 0.4) {
      s += "??";
    } else if (p < 0.45) {
      s.back() = '!';
    }
  } else if (p < 0.3) {
    s += "?";
  }
  return s;
}

std::vector<Question> Workload(uint32_t seed, int paraphrases, int* bases) {
  std::mt19937 rng(seed);
  std::vector<Question> qs;
  int base = 0;
  for (const Template& t : Templates()) {
    for (const auto& v : t.values) {
      qs.push_back({Fill(t.frames[0], v), base, true});
      for (int i = 0; i < paraphrases; ++i) qs.push_back({Paraphrase(t, v, rng), base, false});
      ++base;
    }
  }
  *bases = base;
  std::shuffle(qs.begin(), qs.end(), rng);
  return qs;
}

// ---- replay ----------------------------------------------------------------------

struct Outcome {
  int requests = 0, hits = 0, false_hits = 0;
  std::vector<std::pair<std::string, std::string>> false_pairs;  // (asked, answered)
  // Misses of questions whose base was already stored: (asked, nearest stored, similarity).
  std::vector<std::tuple<std::string, std::string, float>> missed;
};

struct Embedded {
  std::vector<std::vector<float>> vectors;
  std::vector<std::vector<uint64_t>> terms;
};

Outcome Replay(const std::vector<Question>& qs, const Embedded& e, float threshold,
               float term_weight) {
  SemanticCacheOptions o;
  o.threshold = threshold;
  o.term_weight = term_weight;
  o.max_entries = 0;
  auto cache = *SemanticCache::Create(o);
  const auto& vectors = e.vectors;
  Outcome out;
  std::map<int, std::string> first_text;
  for (size_t i = 0; i < qs.size(); ++i) {
    out.requests++;
    auto hit = *cache->Lookup("bench", vectors[i], e.terms[i]);
    if (hit.has_value()) {
      out.hits++;
      int answered = std::stoi(hit->response.body);
      if (answered != qs[i].base) {
        out.false_hits++;
        out.false_pairs.push_back({qs[i].text, first_text[answered]});
      }
    } else {
      if (first_text.count(qs[i].base)) {
        // The closest stored paraphrase of the same question, for tuning.
        float best = -1;
        std::string best_text;
        for (size_t j = 0; j < i; ++j) {
          if (qs[j].base != qs[i].base) continue;
          float dot = 0;
          for (size_t k = 0; k < vectors[i].size(); ++k) dot += vectors[i][k] * vectors[j][k];
          if (dot > best) best = dot, best_text = qs[j].text;
        }
        out.missed.emplace_back(qs[i].text, best_text, best);
      }
      lumen::serve::Response r;
      r.body = std::to_string(qs[i].base);
      (void)cache->Insert("bench", vectors[i], r, e.terms[i]);
      first_text.emplace(qs[i].base, qs[i].text);
    }
  }
  return out;
}

Embedded EmbedAll(const std::vector<Question>& qs, const TextEmbedderOptions& options) {
  Embedded out;
  for (const auto& q : qs) {
    out.vectors.push_back(TextEmbedding(q.text, options));
    out.terms.push_back(lumen::models::TextTerms(q.text));
  }
  return out;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

double Mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / v.size();
}

double Us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli("lumen semantic cache benchmark");
  TextEmbedderOptions text;
  uint32_t seed = 2;
  int paraphrases = 5;
  double model_ms = 20;
  float threshold = 0;
  float term_weight = SemanticCacheOptions{}.term_weight;
  bool sweep = false, show_false = false, show_missed = false;
  cli.add_option("--seed", seed, "paraphrase generator seed (the embedder was tuned on 1)");
  cli.add_option("--paraphrases", paraphrases, "paraphrases per base question");
  cli.add_option("--model-ms", model_ms, "the model's latency that a hit saves");
  cli.add_option("--threshold", threshold, "default: the text embedder's");
  cli.add_option("--dim", text.dim, "the text embedding's length");
  cli.add_option("--term-weight", term_weight, "the terms' share of the score (0: vectors only)");
  cli.add_flag("--sweep", sweep, "also sweep the text embedder's weights");
  cli.add_flag("--show-false", show_false, "print the false hits");
  cli.add_flag("--show-missed", show_missed, "print the paraphrases that missed");
  CLI11_PARSE(cli, argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress shows when piped

  if (threshold <= 0) threshold = text.threshold;
  int bases = 0;
  std::vector<Question> qs = Workload(seed, paraphrases, &bases);
  int possible = static_cast<int>(qs.size()) - bases;
  std::printf(
      "workload: %d base questions x (1 as written + %d paraphrases) = %zu requests, "
      "seed %u; at most %d can hit (%.1f%%)\n\n",
      bases, paraphrases, qs.size(), seed, possible, 100.0 * possible / qs.size());
  std::printf("examples:\n");
  for (size_t i = 0; i < 8 && i < qs.size(); ++i) {
    std::printf("  [%3d] %s\n", qs[i].base, qs[i].text.c_str());
  }

  // 1. Hit ratio against threshold.
  Embedded embedded = EmbedAll(qs, text);
  std::printf(
      "\n1. text embedder (dim %d; weights: unigram %.2f, bigram %.2f, 3-gram %.2f, "
      "role %.2f, generic words %.2f); cache: terms' share of the score %.2f\n",
      text.dim, text.unigram_weight, text.bigram_weight, text.trigram_weight, text.role_weight,
      text.generic_weight, term_weight);
  std::printf("%9s  %9s  %11s  %10s  %12s\n", "threshold", "hit ratio", "of possible", "false hits",
              "false/hits");
  for (float t : {0.50f, 0.55f, 0.60f, 0.65f, 0.70f, 0.75f, 0.80f, 0.85f, 0.90f, 0.95f}) {
    if (std::abs(t - threshold) < 0.025f) continue;
    Outcome o = Replay(qs, embedded, t, term_weight);
    std::printf("%9.2f  %8.1f%%  %10.1f%%  %10d  %11.2f%%\n", t, 100.0 * o.hits / o.requests,
                100.0 * (o.hits - o.false_hits) / possible, o.false_hits,
                o.hits ? 100.0 * o.false_hits / o.hits : 0.0);
  }
  Outcome chosen = Replay(qs, embedded, threshold, term_weight);
  std::printf("%9.2f  %8.1f%%  %10.1f%%  %10d  %11.2f%%  <- the default\n", threshold,
              100.0 * chosen.hits / chosen.requests,
              100.0 * (chosen.hits - chosen.false_hits) / possible, chosen.false_hits,
              chosen.hits ? 100.0 * chosen.false_hits / chosen.hits : 0.0);
  {
    // The same without terms: what the vectors alone do, at their best
    // threshold under 1% false hits.
    float best_t = 0;
    Outcome best;
    for (float t = 0.60f; t < 0.96f; t += 0.01f) {
      Outcome o = Replay(qs, embedded, t, 0.0f);
      if (o.false_hits * 100 < o.hits && o.hits > best.hits) best = o, best_t = t;
    }
    std::printf(
        "vectors only (no terms), best threshold %.2f: hit ratio %.1f%%, %.2f%% of hits "
        "false\n",
        best_t, 100.0 * best.hits / std::max(1, best.requests),
        best.hits ? 100.0 * best.false_hits / best.hits : 0.0);
  }
  if (show_false) {
    std::printf("\nfalse hits at %.2f:\n", threshold);
    for (const auto& [asked, answered] : chosen.false_pairs) {
      std::printf("  asked %-55s got the answer to %s\n", ("\"" + asked + "\"").c_str(),
                  ("\"" + answered + "\"").c_str());
    }
  }
  if (show_missed) {
    std::printf("\nmissed paraphrases at %.2f (cosine to the nearest earlier one):\n", threshold);
    for (const auto& [asked, nearest, similarity] : chosen.missed) {
      std::printf("  %.3f  %-60s ~ %s\n", similarity, asked.c_str(), nearest.c_str());
    }
  }

  if (sweep) {
    std::printf(
        "\nsweep (for each setting the threshold with the most hits and < 1%% of them "
        "false):\n");
    std::printf("%6s %7s %7s %7s %7s  %9s  %9s  %10s\n", "terms", "bigram", "3-gram", "role",
                "generic", "threshold", "hit ratio", "false/hits");
    for (float tw : {0.0f, 0.3f, 0.5f, 0.7f}) {
      for (float bw : {0.0f, 0.3f}) {
        for (float cw : {0.5f, 1.0f}) {
          for (float gw : {0.5f, 1.0f}) {
            TextEmbedderOptions o = text;
            o.bigram_weight = bw;
            o.trigram_weight = cw;
            o.generic_weight = gw;
            Embedded e = EmbedAll(qs, o);
            float best_t = 0;
            Outcome best;
            for (float t = 0.50f; t < 0.95f; t += 0.02f) {
              Outcome r = Replay(qs, e, t, tw);
              if (r.false_hits * 100 < r.hits && r.hits > best.hits) best = r, best_t = t;
            }
            std::printf("%6.2f %7.2f %7.2f %7.2f %7.2f  %9.2f  %8.1f%%  %9.2f%%\n", tw, bw, cw,
                        o.role_weight, gw, best_t, 100.0 * best.hits / std::max(1, best.requests),
                        best.hits ? 100.0 * best.false_hits / best.hits : 0.0);
          }
        }
      }
    }
  }

  // 2. Costs, at the default threshold, over the same replay.
  std::vector<double> embed_us, hit_us, miss_us, insert_us;
  {
    SemanticCacheOptions o;
    o.threshold = threshold;
    o.term_weight = term_weight;
    o.max_entries = 0;
    for (int round = 0; round < 3; ++round) {  // the first rounds warm caches up
      embed_us.clear();
      hit_us.clear();
      miss_us.clear();
      insert_us.clear();
      auto cache = *SemanticCache::Create(o);
      for (const auto& q : qs) {
        auto t0 = Clock::now();
        std::vector<float> v = TextEmbedding(q.text, text);
        std::vector<uint64_t> terms = lumen::models::TextTerms(q.text);
        auto t1 = Clock::now();
        auto hit = *cache->Lookup("bench", v, terms);
        auto t2 = Clock::now();
        embed_us.push_back(Us(t1 - t0));
        if (hit.has_value()) {
          hit_us.push_back(Us(t2 - t1));
        } else {
          miss_us.push_back(Us(t2 - t1));
          lumen::serve::Response r;
          r.body = std::to_string(q.base);
          auto t3 = Clock::now();
          (void)cache->Insert("bench", v, r, terms);
          insert_us.push_back(Us(Clock::now() - t3));
        }
      }
    }
  }
  std::printf("\n2. cost per request (us), threshold %.2f, up to %d entries\n", threshold,
              static_cast<int>(miss_us.size()));
  std::printf("%-22s %8s %8s %8s %6s\n", "", "mean", "p50", "p99", "n");
  auto row = [](const char* name, const std::vector<double>& v) {
    std::printf("%-22s %8.1f %8.1f %8.1f %6zu\n", name, Mean(v), Percentile(v, 0.5),
                Percentile(v, 0.99), v.size());
  };
  row("embed (text + terms)", embed_us);
  row("lookup, hit", hit_us);
  row("lookup, miss", miss_us);
  row("insert (after a miss)", insert_us);

  std::printf("\n   lookup against one namespace of N entries (dim %d, faiss flat):\n", text.dim);
  std::printf("%8s  %10s  %10s\n", "N", "mean us", "p99 us");
  std::mt19937 rng(7);
  std::normal_distribution<float> g;
  // Filled through Insert, which searches too (to merge near-duplicates):
  // quadratic, so the sizes stay modest.
  for (int n : {1000, 2000, 5000}) {
    SemanticCacheOptions o;
    o.threshold = 0.99f;
    o.max_entries = 0;
    auto cache = *SemanticCache::Create(o);
    std::vector<float> v(text.dim);
    for (int i = 0; i < n; ++i) {
      for (float& x : v) x = g(rng);
      lumen::serve::Response r;
      (void)cache->Insert("ns", v, r);
    }
    std::vector<double> us;
    for (int i = 0; i < 200; ++i) {
      for (float& x : v) x = g(rng);
      auto t0 = Clock::now();
      (void)cache->Lookup("ns", v);
      us.push_back(Us(Clock::now() - t0));
    }
    std::printf("%8d  %10.1f  %10.1f\n", n, Mean(us), Percentile(us, 0.99));
  }

  // 3. What it saves in front of a model.
  double hit_ratio = static_cast<double>(chosen.hits) / chosen.requests;
  double overhead_ms = (Mean(embed_us) + Mean(miss_us)) / 1000;
  double with_cache = hit_ratio * (Mean(embed_us) + Mean(hit_us)) / 1000 +
                      (1 - hit_ratio) * (overhead_ms + Mean(insert_us) / 1000 + model_ms);
  std::printf(
      "\n3. in front of a %.0f ms model: hit ratio %.1f%% (%.2f%% of hits false), "
      "mean latency %.2f ms with the cache vs %.2f ms without; a miss pays %.3f ms "
      "more\n",
      model_ms, 100 * hit_ratio, chosen.hits ? 100.0 * chosen.false_hits / chosen.hits : 0.0,
      with_cache, model_ms, overhead_ms + Mean(insert_us) / 1000);
  return 0;
}
