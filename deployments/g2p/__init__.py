"""G2P: text to IPA phones per word, behind interchangeable backends."""
