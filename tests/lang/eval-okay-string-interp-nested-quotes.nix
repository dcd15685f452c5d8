"outer ${"inner ${"deepest"} inner"} outer"
