[ ''  abc'' ''abc
  def'' ''
abc'' '''' ]
