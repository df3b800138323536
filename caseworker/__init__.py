"""The caseworkers' web pages: the queue, cases, the directory, failures, accounts."""
