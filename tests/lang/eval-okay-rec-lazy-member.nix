(rec { a = throw "never"; b = 5; }).b
