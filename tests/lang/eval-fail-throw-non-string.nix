throw { reason = "x"; }
