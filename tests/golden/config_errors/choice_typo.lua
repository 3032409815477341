mode = "activ"
log_level = "verbose"
