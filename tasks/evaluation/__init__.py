"""The evaluation stage: representations to compare (`representations`), `clustering`,
`metrics`, the ranked comparison (`report`), figures (`figures` decides, `plots` draws), what is
logged (`tracking`), and how the champion is chosen and packaged (`champion`)."""
