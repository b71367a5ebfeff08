module spoolerd/spool

go 1.19
