"""Reading what people send: the brief's answers and the kinds of the attached documents."""
