"""Router intelligence: the prompt dataset, response collection, scoring, labels, training."""
