# Reference AUCs, DeLong CIs / variances and paired DeLong tests from R's pROC.
# Usage: Rscript make_proc_reference.R CSVDIR proc_reference.json
# (CSVs from export_reference_data.py). Direction and levels are fixed explicitly so pROC does not
# guess them: controls = 0, cases = 1, direction "<" (higher score = case).
suppressMessages(library(pROC))
suppressMessages(library(jsonlite))
args <- commandArgs(trailingOnly = TRUE)
out <- list(
  produced_by = "tests/evaluation/data/make_proc_reference.R on CSVs from export_reference_data.py",
  r_version = R.version.string,
  proc_version = as.character(packageVersion("pROC")),
  datasets = list()
)
for (name in c("breast_cancer", "wine", "digits")) {
  df <- read.csv(file.path(args[1], paste0(name, ".csv")))
  scores <- setdiff(names(df), "y")
  rocs <- list()
  single <- list()
  for (s in scores) {
    r <- roc(df$y, df[[s]], levels = c(0, 1), direction = "<", quiet = TRUE)
    rocs[[s]] <- r
    ci95 <- ci.auc(r, method = "delong", conf.level = 0.95)
    ci90 <- ci.auc(r, method = "delong", conf.level = 0.90)
    single[[s]] <- list(
      auc = as.numeric(auc(r)),
      var_delong = var(r, method = "delong"),
      ci95 = c(ci95[1], ci95[3]),
      ci90 = c(ci90[1], ci90[3])
    )
  }
  tests <- list()
  for (i in 1:(length(scores) - 1)) {
    for (j in (i + 1):length(scores)) {
      t <- roc.test(rocs[[scores[i]]], rocs[[scores[j]]], method = "delong", paired = TRUE)
      tests[[length(tests) + 1]] <- list(
        a = scores[i], b = scores[j], z = unname(t$statistic), p_value = t$p.value
      )
    }
  }
  out$datasets[[name]] <- list(n = nrow(df), n_pos = sum(df$y), scores = single, tests = tests)
}
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), args[2])
