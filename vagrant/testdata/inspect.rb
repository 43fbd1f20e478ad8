# Loads ../Vagrantfile against a recording stand-in for Vagrant's
# configuration API and prints what it configured as JSON, for the offline
# structure test (vagrant_test.go): machines, box, sizes, networks,
# provisioners, triggers and synced folders.
require "json"

class Recorder
  def initialize
    @children = {}
    @log = []
  end

  def to_h
    h = { "calls" => @log }
    @children.each { |k, v| h[k] = v.to_h }
    h
  end

  def method_missing(name, *args, **kw, &blk)
    name = name.to_s
    if name.end_with?("=")
      @log << { "set" => name.chomp("="), "value" => args.first }
      return args.first
    end
    if args.empty? && kw.empty? && blk.nil?
      return @children[name] ||= Recorder.new
    end
    entry = { "call" => name, "args" => args, "kw" => kw }
    if blk
      inner = Recorder.new
      blk.call(inner)
      entry["block"] = inner.to_h
    end
    @log << entry
    self
  end

  def respond_to_missing?(*) = true
end

module Vagrant
  def self.configure(_version)
    root = Recorder.new
    yield root
    puts JSON.pretty_generate(root.to_h)
  end
end

load File.expand_path("../Vagrantfile", __dir__)
